/* The unlocked key of a repository, cached on disk for PostgreSQL's archive and restore
 * commands (wal-push, wal-fetch), which run once per WAL segment and must not pay scrypt
 * each time (docs/DECISIONS.md), and for wal-stream, whose restarts must not either. The file is
 * $PERMAFROST_KEY_CACHE/<repository id>.key, the master key, or <repository id>.wkey, a write-only
 * key's id and material (default folder ~/.local/state/permafrost; "off" turns the cache off), mode
 * 0600, in a folder of ours that nobody else can write; anything else is ignored with a warning. */
#ifndef PF_CLI_KEYCACHE_H
#define PF_CLI_KEYCACHE_H

#include <stdbool.h>

#include "common/err.h"
#include "repo/repo.h"

/* Opens the repository with the cached key when there is one (the config's MAC proves it
 * is still the right one; a key that does not open it is removed), else with the
 * passphrase (pf_cli_open_repo), then caches the key. A cached write-only key is used
 * only when write_only_ok: a command that reads (wal-fetch) would otherwise be refused
 * by a key that the passphrase it is given does not open. */
pf_repo *pf_cli_open_repo_cached(bool write_only_ok, pf_err *err);

/* The key cache folder into buf (n bytes): $PERMAFROST_KEY_CACHE, else
 * $XDG_STATE_HOME/permafrost, else ~/.local/state/permafrost. NULL when the cache is turned
 * off ("off") or there is no home to hold it. */
const char *pf_cli_key_cache_dir(char *buf, size_t n);

#endif

/* The unlocked master key of a repository, cached on disk for PostgreSQL's archive and
 * restore commands (wal-push, wal-fetch), which run once per WAL segment and must not pay
 * scrypt each time (docs/DECISIONS.md). The file is $PERMAFROST_KEY_CACHE/<repository
 * id>.key (default ~/.local/state/permafrost; "off" turns the cache off), mode 0600, in a
 * folder of ours that nobody else can write; anything else is ignored with a warning. */
#ifndef PF_CLI_KEYCACHE_H
#define PF_CLI_KEYCACHE_H

#include "common/err.h"
#include "repo/repo.h"

/* Opens the repository with the cached master key when there is one (a format-2 config's
 * MAC proves it is still the right one; a key that does not open it is removed), else
 * with the passphrase (pf_cli_open_repo), then caches the key. */
pf_repo *pf_cli_open_repo_cached(pf_err *err);

#endif

/* Mastodon's configuration: live/.env.production read the way Mastodon reads it (the
 * dotenv gem), then the settings of config/database.yml and
 * lib/mastodon/redis_configuration.rb applied to it, so that we talk to the same
 * PostgreSQL and Redis as the running server.
 *
 * Syntax accepted (as dotenv):
 *   KEY=value            value trimmed; '#' starts a comment; "\x" becomes "x"
 *   export KEY=value     "export" is ignored
 *   KEY: value           YAML-ish separator (colon, then whitespace)
 *   KEY='value'          literal, may span lines, no escapes, no substitution
 *   KEY="value"          may span lines; \n and \r become newline and carriage return,
 *                        "\x" becomes "x"; $VAR and ${VAR} substituted
 *   # comment, blank lines, CRLF line ends; lines that match nothing are ignored.
 * $VAR / ${VAR} (unquoted and double-quoted values) take the value of a key set earlier in
 * the file, else "" (the environment of the backup process is not Mastodon's, so it is not
 * consulted). "$(command)" is not run: it is kept as written, with a warning. When a key
 * appears twice the last one wins. The file is input from a snapshot on restore, so it is
 * bounded: at most 1 MiB, each value at most 64 KiB after expansion, all values together
 * at most 4 MiB (a chain of B=$A$A lines would otherwise ask for gigabytes); over that the
 * file is refused (PF_EUSAGE, naming the key and line).
 *
 * Values are secrets until proven otherwise: no error or log message ever contains one. */
#ifndef PF_MASTODON_ENV_H
#define PF_MASTODON_ENV_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "component/redis.h" /* pf_redis_conn */

typedef struct pf_mastodon_env {
    /* PostgreSQL (DB_* as config/database.yml uses them, then DATABASE_URL over them, the
     * way Rails merges the two). */
    char *db_host;    /* DB_HOST, default "localhost" (Mastodon's production default); a
                       * value starting with '/' is a socket directory; NULL (DB_HOST set to
                       * "") means libpq's default socket */
    int db_port;      /* DB_PORT, default 5432 */
    char *db_name;    /* DB_NAME, default "mastodon_production" */
    char *db_user;    /* DB_USER, default "mastodon" */
    char *db_pass;    /* DB_PASS, NULL when unset or empty */
    char *db_sslmode; /* DB_SSLMODE, default "prefer" */
    bool database_url;

    /* Redis: REDIS_URL, else REDIS_HOST/REDIS_PORT/REDIS_USER/REDIS_PASSWORD/REDIS_DB with
     * defaults localhost:6379 db 0. */
    pf_redis_conn redis;
    /* Sidekiq's queues live in a different Redis (SIDEKIQ_REDIS_URL / SIDEKIQ_REDIS_HOST
     * pointing elsewhere): that one must be backed up too. */
    bool sidekiq_redis_separate;
    pf_redis_conn sidekiq_redis;
    /* CACHE_REDIS_URL / CACHE_REDIS_HOST: a cache, never backed up. */
    bool cache_redis_separate;

    /* PAPERCLIP_ROOT_PATH. After pf_mastodon_env_parse: the value as written or NULL.
     * After pf_mastodon_env_load: always an absolute path (default <live>/public/system,
     * ":rails_root" and relative paths resolved against the live directory). */
    char *paperclip_root;
    bool s3_enabled;    /* S3_ENABLED=true: uploads are not on this disk */
    bool es_enabled;    /* ES_ENABLED=true: suggest "tootctl search deploy" after restore */
    char *local_domain; /* LOCAL_DOMAIN (required) */

    /* Every key and its final value, in order of first appearance. */
    size_t nvars;
    char **keys;
    char **values;
} pf_mastodon_env;

/* Parses the text of a .env.production (len bytes, need not be NUL-terminated, may hold
 * anything) into *out, which the caller frees with pf_mastodon_env_free() whether or not
 * this succeeds. Returns 0, or -1 with err (PF_EUSAGE) naming the offending key, e.g.
 * "DB_PORT is not a port number (1-65535)" or "LOCAL_DOMAIN is not set". Malformed lines
 * are skipped like dotenv does; lines whose quoting dotenv would also take literally log a
 * warning naming the line and key. */
int pf_mastodon_env_parse(const char *text, size_t len, pf_mastodon_env *out, pf_err *err);

/* The largest .env.production accepted anywhere (a real one is a few KiB). */
#define PF_MASTODON_ENV_MAX_FILE (1024 * 1024)

/* Reads <live_dir>/.env.production and parses it; resolves paperclip_root. Errors are
 * prefixed with the file's path: "/home/mastodon/live/.env.production: DB_PORT is not a
 * port number (1-65535)"; a missing or unreadable file is PF_ENOTFOUND / PF_EIO. Refuses
 * files over 1 MiB. Free *out with pf_mastodon_env_free() in every case. */
int pf_mastodon_env_load(const char *live_dir, pf_mastodon_env *out, pf_err *err);

/* Where the media of a server at live are, with PAPERCLIP_ROOT_PATH root (NULL or "":
 * unset) read the way Mastodon reads it: <live>/public/system by default, ":rails_root"
 * and relative paths resolved against live; trailing slashes removed. The one place the
 * media root is resolved. Returns a malloc'd path, or NULL when out of memory. */
char *pf_mastodon_media_root(const char *live, const char *paperclip_root);

/* The final value of any key, or NULL when the file does not set it. Borrowed. */
const char *pf_mastodon_env_get(const pf_mastodon_env *e, const char *key);

/* Wipes the values (they include passwords and keys) and frees everything. NULL is fine;
 * leaves *e zeroed. */
void pf_mastodon_env_free(pf_mastodon_env *e);

#endif

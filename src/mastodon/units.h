/* The environment Mastodon's systemd units give its processes: where servers often keep
 * the ACTIVE_RECORD_ENCRYPTION_* keys instead of .env.production.
 *
 * Read as systemd reads them, for the parts that set variables:
 *   - the unit file: the first of the search directories that holds NAME (an instance
 *     "mastodon-streaming@4000.service" falls back to its template
 *     "mastodon-streaming@.service"); then its drop-ins NAME.d/ *.conf from every directory
 *     (for a template or instance also TEMPLATE.d/), in file-name order, a name in an
 *     earlier directory hiding the same name in a later one;
 *   - in [Service]: Environment= (space-separated assignments, each word quoted with "" or
 *     '' as a whole or in parts, C escapes such as \n \t \\ \" \xNN, "%%" for "%") and
 *     EnvironmentFile= (an absolute path; a leading "-" makes a missing file fine); an empty
 *     assignment empties the list so far; a line ending in a backslash continues on the
 *     next; lines starting with # or ; are comments;
 *   - an environment file: KEY=VALUE lines, # and ; comments, values unquoted (trimmed, "\x"
 *     is "x"), '...' (literal) or "..." (with \" \\ \$ \` escapes), quotes may span lines;
 *   - variables from environment files override Environment=, later files earlier ones.
 * Files are bounded (1 MiB each). No message ever contains a value.
 *
 * Search directories: /etc/systemd/system then /lib/systemd/system, or the colon-separated
 * list of the systemd_unit_path setting (tests point it at a directory of their own). */
#ifndef PF_MASTODON_UNITS_H
#define PF_MASTODON_UNITS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define PF_UNITS_DEFAULT_PATH "/etc/systemd/system:/lib/systemd/system"
#define PF_UNITS_MAX_FILE (1024 * 1024)

/* Variables, in order of first assignment; for each, the file it last came from. */
typedef struct pf_unit_env {
    size_t n;
    char **keys, **values;
    char **sources;  /* the unit file or drop-in (Environment=) or the environment file */
    bool *from_file; /* came from an EnvironmentFile=, not an Environment= line */
    /* EnvironmentFile= entries in effect, in order, as written without the "-"; the ones
     * that do not exist are skipped (optional) or reported (not optional). */
    size_t nfiles;
    char **files;
    bool *optional;
    /* Every unit file and drop-in read, for messages ("found in ..."). */
    size_t nread;
    char **read;
} pf_unit_env;

/* Applies one Environment= value (text as after "Environment=") to env, naming source as
 * where the variables came from. Words that are not NAME=VALUE are skipped with a warning
 * naming source. An empty value clears the variables that Environment= set so far. */
void pf_units_apply_environment(pf_unit_env *env, const char *value, const char *source);

/* Parses the text of an environment file (len bytes) into env, overriding. */
void pf_units_apply_envfile(pf_unit_env *env, const char *text, size_t len, const char *source);

/* Parses the text of a unit file or drop-in: applies Environment= lines and records
 * EnvironmentFile= entries (not read yet). */
void pf_units_apply_unit(pf_unit_env *env, const char *text, size_t len, const char *source);

/* Reads unit `name` from `path` (colon-separated directories; NULL: the default) with its
 * drop-ins and the environment files they name. Returns 1 when the unit exists, 0 when no
 * directory has it (env untouched), -1 with err: PF_EIO for a file that cannot be read
 * (a unit, a drop-in or a non-optional environment file), naming it. */
int pf_units_load(const char *path, const char *name, pf_unit_env *env, pf_err *err);

/* The environment of Mastodon's units: mastodon-web.service, else mastodon-sidekiq.service,
 * else the first mastodon-streaming*.service found (in that order: the first unit that
 * exists gives the answer, for the web process is the one that decrypts). *unit receives
 * its name (static), or NULL when there is none (then 0 is returned, env empty). */
int pf_units_mastodon(const char *path, pf_unit_env *env, const char **unit, pf_err *err);

/* The value of key, or NULL; *source (may be NULL) receives the file it came from. */
const char *pf_unit_env_get(const pf_unit_env *env, const char *key, const char **source);

/* Wipes the values and frees everything; leaves *env zeroed. */
void pf_unit_env_free(pf_unit_env *env);

#endif

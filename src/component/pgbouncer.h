/* pgbouncer in front of PostgreSQL. Many servers point DB_HOST/DB_PORT at it (port 6432,
 * transaction pooling). A dump through it works in transaction mode; a restore does not
 * (roles, CREATE DATABASE, pg_restore -j with its per-session settings), and in statement
 * mode not even the dump (a transaction block is refused). Then we connect to PostgreSQL
 * itself, which this module finds.
 *
 * Detection: pgbouncer serves a pseudo-database "pgbouncer" (its admin console). Asked for
 * it, pgbouncer either lets us in (we are in admin_users or stats_users; SHOW VERSION
 * then says "PgBouncer 1.18.0") or refuses with exactly "not allowed" before any
 * authentication; PostgreSQL says the database does not exist (or refuses the password).
 * (On an ordinary database pgbouncer forwards SHOW VERSION to PostgreSQL, which does not
 * know it, so that cannot tell.) The pool mode is learnt by opening a transaction block
 * on the ordinary database: statement mode refuses it.
 *
 * The real server: the [databases] entry of pgbouncer's own configuration for the
 * database (else the "*" entry): host= (a '/' path is a socket directory; unset: pgbouncer's
 * unix_socket_dir, default /tmp) and port= (default 5432), dbname= (default the name
 * asked for). */
#ifndef PF_COMPONENT_PGBOUNCER_H
#define PF_COMPONENT_PGBOUNCER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "component/postgres.h"

#define PF_PGBOUNCER_DEFAULT_INI "/etc/pgbouncer/pgbouncer.ini"

typedef struct pf_pgbouncer_info {
    bool detected;
    char version[64];    /* "PgBouncer 1.18.0"; "" when the admin console refused us */
    bool statement_mode; /* a transaction block was refused on c->dbname */
} pf_pgbouncer_info;

/* Is c (host, port, user, password; os_user is ignored: the admin console's refusal comes
 * before authentication) a pgbouncer? Returns 0 with *info filled (detected false for
 * PostgreSQL), or -1 with err when nothing answers there at all (PF_ECONN, retryable).
 * When pgbouncer is detected and c->dbname is set, also learns statement_mode (a database
 * that does not exist yet, as before a restore, leaves it false). */
int pf_pgbouncer_probe(const pf_pg_conn *c, pf_pgbouncer_info *info, pf_err *err);

/* Whether c->dbname, reached as c says, refuses a transaction block the way pgbouncer in
 * statement pooling mode does. Cheaper and quieter than pf_pgbouncer_probe (no failed
 * login in PostgreSQL's log) for a backup, which only cares about that. Returns 0 with
 * *refused set (false also when the connection fails: the dump then says why). */
int pf_pgbouncer_statement_mode(const pf_pg_conn *c, bool *refused, pf_err *err);

/* Where pgbouncer sends a database. */
typedef struct pf_pgbouncer_target {
    char host[256]; /* host name, address or socket directory */
    int port;
    char dbname[128];
    char pool_mode[16]; /* the entry's pool_mode, else [pgbouncer]'s, else "session" */
} pf_pgbouncer_target;

/* Parses the text of a pgbouncer.ini (NUL-terminated) for database `dbname`. Returns 0 with
 * *t filled, or -1 with err: PF_ENOTFOUND "no [databases] entry for DBNAME nor \"*\"",
 * PF_EUSAGE for an entry that cannot be read ("the entry for DBNAME: port is not a port
 * number"). Lines inih cannot read (%include) are skipped: what they include is not read. */
int pf_pgbouncer_ini_parse(const char *text, const char *dbname, pf_pgbouncer_target *t,
                           pf_err *err);

/* Reads path (NULL: the default) and parses it. Unreadable: PF_EIO / PF_ENOTFOUND naming
 * the file (its permissions, often 0640 postgres, are the usual reason). */
int pf_pgbouncer_ini_load(const char *path, const char *dbname, pf_pgbouncer_target *t,
                          pf_err *err);

/* Where to reach PostgreSQL itself when `through` reaches a pgbouncer: cfg_host/cfg_port
 * when the operator named them (either may be NULL/0; the other then comes from the ini
 * entry, or defaults to the ini's), else the [databases] entry of ini_path for
 * through->dbname. The answer is probed: a pgbouncer there too is refused. Returns 0 with
 * *t filled and *from ("the configuration" or the ini's path, static or borrowed), or -1
 * with err saying why none was found, e.g. "cannot read /etc/pgbouncer/pgbouncer.ini:
 * Permission denied"; the caller says what needs PostgreSQL and which settings to give. */
int pf_pgbouncer_bypass(const pf_pg_conn *through, const char *cfg_host, int cfg_port,
                        const char *ini_path, pf_pgbouncer_target *t, const char **from,
                        pf_err *err);

#endif

/* The PostgreSQL component: Mastodon's database out (pg_dump, streamed) and back in
 * (roles, CREATE DATABASE, pg_restore).
 *
 * We never re-implement pg_dump: the client binaries do the work, chosen so that their
 * major version is at least the server's (Debian keeps one set per major version in
 * /usr/lib/postgresql/N/bin). The environment variable PERMAFROST_PG_BINDIR, when set,
 * names the only directory searched. Passwords reach the children through PGPASSWORD in
 * their environment, never through argv; no message ever contains one.
 *
 * Backup produces two streams:
 *   <db>.dump    pg_dump -Fc -Z0: custom format, uncompressed so that the repository's
 *                chunking deduplicates it from day to day;
 *   globals.sql  pg_dumpall --globals-only (roles, memberships, tablespaces), followed by a
 *                section of database-level settings (GRANT ... ON DATABASE, ALTER
 *                DATABASE ... SET, COMMENT ON DATABASE) that a dump without --create lacks.
 * Restore is what Mastodon's "migrating to a new machine" guide does, exactly: roles
 * from globals.sql, CREATE DATABASE ... TEMPLATE template0 OWNER <DB_USER>, pg_restore -j N
 * keeping the source's owners and privileges, then the database-level settings, and
 * DB_USER's password set from DB_PASS. */
#ifndef PF_COMPONENT_POSTGRES_H
#define PF_COMPONENT_POSTGRES_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "common/err.h"
#include "common/stream.h"

/* How to reach the database (from .env.production). Strings are borrowed. */
typedef struct pf_pg_conn {
    const char *host;     /* host name or address, or a socket directory ("/..."); NULL:
                           * libpq's default socket */
    int port;             /* 0: 5432 */
    const char *dbname;   /* NULL: "mastodon_production" */
    const char *user;     /* NULL: "mastodon" */
    const char *password; /* NULL: none (peer, trust or ~/.pgpass) */
    const char *sslmode;  /* NULL: libpq's default ("prefer") */
    /* Connect, and run the clients, as this OS user (we must be root): what peer
     * authentication over a unix socket judges. NULL: as ourselves. */
    const char *os_user;
} pf_pg_conn;

/* Root backing up a server that Mastodon reaches over a unix socket with no password
 * (the install guide's DB_HOST=/var/run/postgresql, peer authentication): root is nobody's
 * role there. Returns true and fills *db and *super when that is the case:
 *   *db     connects the way the app does: as the OS user named DB_USER (role DB_USER),
 *           or as postgres when no such OS user exists;
 *   *super  the postgres superuser over the same socket, as the postgres OS user (a copy
 *           of *db when there is no postgres OS user): it reads every table, and only a
 *           superuser can read pg_authid, i.e. dump the roles with their passwords.
 * Returns false, leaving both copies of *app, otherwise (we are not root, TCP, a password
 * is set, or os_user is set already). The caller tries *super first and falls back to
 * *db when the superuser cannot connect. */
bool pf_pg_peer_identities(const pf_pg_conn *app, pf_pg_conn *db, pf_pg_conn *super);

/* What a probe learns, and which client binaries the dump will use. */
typedef struct pf_pg_info {
    int server_version_num;  /* e.g. 150005 */
    char server_version[64]; /* e.g. "15.5" */
    bool superuser;          /* the connecting user is a superuser */
    /* Row counts, -1 when the table does not exist. pf_pg_probe counts tables under 200000
     * rows exactly and estimates bigger ones from the planner's statistics; pf_pg_dump
     * replaces them with exact counts inside the dump's own snapshot
     * (counts_in_dump_snapshot), so they then match the dump exactly. */
    int64_t accounts, statuses, media_attachments;
    bool counts_in_dump_snapshot;
    char client_version[64]; /* pg_dump --version, e.g. "15.5" */
    char pg_dump[PATH_MAX];
    char pg_dumpall[PATH_MAX];
    uint64_t dump_bytes; /* bytes written by the last pf_pg_dump */
    /* What the last pf_pg_dump's snapshot was judged on for a later reuse: cluster,
     * database, WAL insert position before the snapshot, the sequences; "" when it cannot
     * be judged (writers in progress, a standby, an old server). */
    char state[512];
    bool reused;            /* the last pf_pg_dump ran no pg_dump: opts->reuse took the parent's */
    uint64_t globals_bytes; /* bytes written by the last pf_pg_dump_globals */
} pf_pg_info;

/* Connects with libpq, reads the server version, whether the user is a superuser and the
 * row counts of accounts, statuses and media_attachments, and picks pg_dump/pg_dumpall of
 * the lowest major version that is >= the server's (the dump then restores with the
 * oldest pg_restore possible). Returns 0, or -1 with err:
 *   PF_ECONN     server unreachable ("cannot connect to PostgreSQL at H:P as U: ..."),
 *                retryable;
 *   PF_EAUTH     password rejected or no pg_hba.conf entry;
 *   PF_ENOTFOUND the database does not exist;
 *   PF_ECOMPONENT no suitable client: "... install postgresql-client-16". */
int pf_pg_probe(const pf_pg_conn *conn, pf_pg_info *info, pf_err *err);

/* What else runs inside the dump's snapshot. Borrowed; NULL is the same as all-zero. */
typedef struct pf_pg_dump_opts {
    /* Called once, on our own connection inside the REPEATABLE READ transaction whose
     * snapshot pg_dump shares (--snapshot), before pg_dump starts: every query sees the
     * database exactly as the dump does (the media a snapshot's rows name, a key a row was
     * encrypted with). Read only: the transaction is READ ONLY. Returning -1 (with err
     * filled: say what failed; the caller adds "postgres") stops the dump before it
     * starts. When the server cannot export a snapshot (a standby before 10) the hook is
     * not called and the dump fails (PF_ECOMPONENT) rather than run it on another view. */
    int (*in_snapshot)(PGconn *conn, void *ctx, pf_err *err);
    void *ctx;
    /* Called once, from pf_pg_dump's thread, when the dump's snapshot exists and
     * in_snapshot has returned, before pg_dump reads a row: whatever is read elsewhere from
     * then on is at least as new as the dump (a file a dumped row names is on disk by
     * then). Not called when pf_pg_dump fails before that point. NULL: nobody waits. */
    void (*ready)(void *ready_ctx);
    void *ready_ctx;
    /* Dump reuse (docs/DECISIONS.md, "When a dump is reused"): the state a parent's dump
     * recorded (pf_pg_info.state). When this database's state, judged in this dump's
     * snapshot, is the same, `reuse` is called there; when it returns true (it took the
     * parent's dump into the snapshot being written), no pg_dump runs, nothing is written
     * to the sink and info->reused is set. NULL or "": always dump. */
    const char *reuse_state;
    bool (*reuse)(void *reuse_ctx);
    void *reuse_ctx;
    /* A parallel dump: jobs > 1 runs `pg_dump -Fd -j jobs` into a new directory under
     * tmpdir (NULL: $TMPDIR, else /var/tmp) instead of streaming one custom-format file,
     * after saying how much room it needs there (the `jobs` largest tables at once, the
     * whole database at worst) and refusing (PF_EIO) when the room is not there. Each
     * table file is handed to file_done, from the calling thread, as soon as pg_dump has
     * closed it, and removed once file_done returns 0; the table of contents last. The
     * sink is then not written. */
    int jobs;
    const char *tmpdir;
    int (*file_done)(void *file_ctx, const char *path, const char *name, pf_err *err);
    void *file_ctx;
} pf_pg_dump_opts;

/* Streams `pg_dump -Fc -Z0` of conn->dbname into `sink`, nothing on disk. `info` must
 * come from pf_pg_probe. The dump runs in a snapshot exported by a REPEATABLE READ
 * transaction of ours, in which the row counts of info are taken again, so they describe
 * exactly what was dumped. Returns 0, or -1: a non-zero exit or a signal gives
 * PF_ECOMPONENT "pg_dump exited 1: <end of its stderr>"; a failing sink gives the sink's
 * error (pg_dump is then stopped). On error the bytes already written are not a usable
 * dump: the caller must not record a snapshot that claims one. */
int pf_pg_dump(const pf_pg_conn *conn, pf_pg_info *info, const pf_pg_dump_opts *o, pf_sink *sink,
               pf_err *err);

/* Streams globals.sql into `sink`: `pg_dumpall --globals-only -l <db>` (with
 * --no-role-passwords when the user is not a superuser, as pg_authid is then unreadable),
 * then the database-level section described above. Same errors as pf_pg_dump. */
int pf_pg_dump_globals(const pf_pg_conn *conn, pf_pg_info *info, pf_sink *sink, pf_err *err);

/* Where and how to restore. Strings are borrowed. */
typedef struct pf_pg_restore_opts {
    const char *host;           /* admin connection; NULL: the local socket */
    int port;                   /* 0: 5432 */
    const char *admin_user;     /* a superuser; NULL: "postgres" */
    const char *admin_password; /* NULL: none. When we are root, the admin is "postgres"
                                 * and host is a socket (or NULL), the clients run as the
                                 * postgres OS user so that peer auth works. */
    const char *dbname;         /* database to create (DB_NAME) */
    const char *owner;          /* its owner (DB_USER) */
    const char *owner_password; /* DB_PASS, set on the owner role after the roles are
                                 * restored; NULL: left as globals.sql has it */
    int jobs;                   /* pg_restore -j; <= 0: the number of CPUs, at most 8 */
    bool force;                 /* drop an existing database that holds tables */
    bool no_owner;              /* pg_restore --no-owner --role=<owner>, for an admin that
                                 * is not a superuser; default keeps the source's owners */
    bool as_admin;              /* run pg_restore as the admin even when we could as the
                                 * owner: for a dump holding objects of other roles */
    const char *tmpdir;         /* where the dump is spooled for a parallel restore;
                                 * NULL: $TMPDIR, else /var/tmp */
    /* A dump in directory format (pg_dump -Fd, pg_dump_jobs > 1): pf_pg_restore is given no
     * dump stream but calls fill_dir to write the dump's files into `dir` (new, empty,
     * under tmpdir), then restores from it; NULL: the dump is a custom-format stream. */
    int (*fill_dir)(void *ctx, const char *dir, pf_err *err);
    void *fill_ctx;
} pf_pg_restore_opts;

/* Refuses to restore over data: returns -1 with PF_EEXIST when o->dbname exists and holds
 * any table outside the system schemas, unless o->force. Also checks that the admin
 * connection works (PF_ECONN / PF_EAUTH as pf_pg_probe) and that pg_restore and psql are
 * installed. Returns 0 when a restore may proceed. */
int pf_pg_restore_check(const pf_pg_restore_opts *o, pf_err *err);

/* Who runs pg_restore: the owner role, not the admin, whenever we can authenticate as it
 * (as root over a socket, as the OS user of the same name, by peer; else with
 * owner_password), so that what the dump's SQL may do is bounded by what the owner may do;
 * otherwise the admin, as before. pf_pg_restore_check says which with pf_info.
 *
 * Restores: pf_pg_restore_check; with force, drops the existing database; applies the
 * roles of `globals` (NULL: only makes sure o->owner exists) without touching the admin
 * role or any superuser that already exists on the target, and without failing on roles
 * that exist; sets the owner's password from owner_password; CREATE DATABASE ... TEMPLATE
 * template0 ENCODING 'UTF8' OWNER o->owner; spools `dump` to a 0600 file in a private
 * temporary directory (parallel pg_restore needs a seekable file) and runs
 * pg_restore -j N --exit-on-error; applies the database-level section of globals.sql;
 * removes the spooled file in every case. Returns 0, or -1 with err (PF_ECOMPONENT
 * "pg_restore exited 1: ..." etc.). A failure after CREATE DATABASE leaves the partial
 * database in place for inspection; a new attempt needs force. */
int pf_pg_restore(const pf_pg_restore_opts *o, pf_source *globals, pf_source *dump, pf_err *err);

#endif

/* globals.sql, parsed and checked before any of it reaches psql.
 *
 * globals.sql comes out of the snapshot, so on restore it is input from whoever wrote the
 * snapshot. psql runs what it is given as root's child with a superuser connection: a
 * psql meta-command (\! sh, \o |cmd, \copy ... program) runs on this machine, and SQL
 * such as COPY ... TO PROGRAM or CREATE TABLESPACE acts on it. So nothing of the file is
 * passed through: it is split into tokens (quotes, E'' strings, dollar quotes, quoted
 * identifiers and both kinds of comment followed exactly as PostgreSQL and psql do), each
 * statement must match one of the few forms that pg_dumpall --globals-only (PostgreSQL
 * 13-17) and permafrost's own database-level section contain, and the SQL that is run is
 * written anew from the parsed parts (names always double-quoted, values always string
 * literals). Anything else refuses the whole file, naming the line.
 *
 * Accepted, before the section mark ("-- permafrost: database-level settings"):
 *   SET default_transaction_read_only = off | client_encoding = 'UTF8' |
 *       standard_conforming_strings = on
 *   CREATE ROLE r [[WITH] options];   ALTER ROLE|USER r [WITH] options;
 *       options: [NO]SUPERUSER [NO]CREATEDB [NO]CREATEROLE [NO]INHERIT [NO]LOGIN
 *       [NO]REPLICATION [NO]BYPASSRLS, CONNECTION LIMIT n, [ENCRYPTED] PASSWORD 's'|NULL,
 *       VALID UNTIL 's'
 *   ALTER ROLE r SET p TO v[, v...];  COMMENT ON ROLE r IS 's'|NULL;
 *   GRANT r[, ...] TO m[, ...] [WITH ADMIN OPTION | WITH {ADMIN|INHERIT|SET} {TRUE|FALSE}
 *       [, ...]] [GRANTED BY g];
 *   GRANT SET ON PARAMETER p[, ...] TO r[, ...] [WITH GRANT OPTION];
 * and after it (the names of databases are replaced by target_db when given):
 *   ALTER DATABASE d SET p TO v[, ...] | CONNECTION LIMIT [=] n | IS_TEMPLATE [=] b |
 *       ALLOW_CONNECTIONS [=] b;
 *   ALTER ROLE r IN DATABASE d SET p TO v[, ...];  COMMENT ON DATABASE d IS 's'|NULL;
 *   GRANT privs ON DATABASE d TO g[, ...] [WITH GRANT OPTION];
 *   REVOKE [GRANT OPTION FOR] privs ON DATABASE d FROM g[, ...];
 *       privs: ALL [PRIVILEGES] or a list of CREATE, CONNECT, TEMPORARY, TEMP.
 * Parameters that load code into the server (*_preload_libraries, dynamic_library_path,
 * jit_provider) are refused in every SET. The only meta-commands tolerated are the
 * \restrict KEY and \unrestrict KEY lines that pg_dump/pg_dumpall write since 17.6, 16.10,
 * 15.14, 14.19 and 13.22, alone on their line between statements; they are dropped. */
#ifndef PF_COMPONENT_PGSQL_FILTER_H
#define PF_COMPONENT_PGSQL_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* The marker comment that starts permafrost's database-level section. */
#define PF_PGSQL_SECTION_MARK "-- permafrost: database-level settings"

typedef enum pf_pgsql_kind {
    PF_PGSQL_SET,          /* SET of the session, as pg_dumpall writes them */
    PF_PGSQL_CREATE_ROLE,  /* CREATE ROLE */
    PF_PGSQL_ALTER_ROLE,   /* ALTER ROLE ... WITH options */
    PF_PGSQL_ROLE_CONFIG,  /* ALTER ROLE ... [IN DATABASE d] SET */
    PF_PGSQL_ROLE_COMMENT, /* COMMENT ON ROLE */
    PF_PGSQL_GRANT_ROLE,   /* GRANT role TO role */
    PF_PGSQL_GRANT_PARAM,  /* GRANT SET ON PARAMETER */
    PF_PGSQL_DB_ALTER,     /* ALTER DATABASE */
    PF_PGSQL_DB_COMMENT,   /* COMMENT ON DATABASE */
    PF_PGSQL_DB_ACL,       /* GRANT / REVOKE ... ON DATABASE */
} pf_pgsql_kind;

typedef struct pf_pgsql_stmt {
    pf_pgsql_kind kind;
    unsigned line;  /* where it starts in the file, from 1 */
    char *role;     /* the role a *_ROLE / ROLE_* statement is about (for GRANT_ROLE the
                     * first member); NULL for the others */
    bool superuser; /* CREATE/ALTER ROLE that makes the role a superuser */
    char *sql;      /* what to run: one statement, ends with ";\n" */
} pf_pgsql_stmt;

typedef struct pf_pgsql_globals {
    pf_pgsql_stmt *roles; /* before the section mark, in file order */
    size_t nroles;
    pf_pgsql_stmt *db; /* after it */
    size_t ndb;
    bool has_section; /* the mark was present */
} pf_pgsql_globals;

/* Parses `len` bytes of globals.sql. target_db (may be NULL: names kept) replaces every
 * database name of the section. Returns 0 with *out filled (free it with
 * pf_pgsql_globals_free), or -1 with PF_ECORRUPT "line N: <why>" and *out empty. Never
 * reads outside the input; the output holds only what the accepted forms allow. */
int pf_pgsql_globals_parse(const char *text, size_t len, const char *target_db,
                           pf_pgsql_globals *out, pf_err *err);

void pf_pgsql_globals_free(pf_pgsql_globals *g);

struct pf_buf;

/* Calls fn for each SQL statement (up to and including its ';') and each psql
 * meta-command line (meta: from a backslash to the end of the line) of `sql`, skipping
 * "--" comments and blank space. Quotes ('...', "...") are followed so that a ';' or
 * newline inside them does not split; an unterminated quote runs to the end. pg_dump's
 * output of roles and database settings has no dollar quoting. Stops at, and returns, the
 * first -1 of fn; else 0. */
typedef int (*pf_pgsql_each_fn)(const char *s, size_t n, bool meta, void *ctx, pf_err *err);
int pf_pgsql_each(const char *sql, size_t n, pf_pgsql_each_fn fn, void *ctx, pf_err *err);

/* Appends to out (one per line) the statements of `pg_dump --create --schema-only` output
 * that a dump without --create loses: after the "\connect" line, COMMENT ON DATABASE,
 * SECURITY LABEL, ALTER DATABASE (but not OWNER TO), ALTER ROLE ... IN DATABASE, and
 * GRANT / REVOKE ... ON DATABASE. */
void pf_pgsql_db_level(const char *sql, size_t n, struct pf_buf *out);

/* The role filter of a restore: whether statement s of globals.sql's roles part runs on
 * the target. `existing` lists the target's roles, "<name>\t<s|->\n" per role ('s': a
 * superuser); NULL: none. Statements about the admin role, or about a superuser the target
 * has, are skipped; CREATE ROLE of a role that exists is skipped (its ALTER ROLE still
 * gives it the source's attributes); every other statement runs. Counts CREATE ROLEs kept
 * in *created and statements skipped in *skipped. */
bool pf_pgsql_keep_role(const pf_pgsql_stmt *s, const char *admin, const char *existing,
                        int *created, int *skipped);

/* Appends s as an SQL string literal that means s under any setting of
 * standard_conforming_strings and that psql reads as one literal: '...' with quotes
 * doubled, or E'...' with backslashes doubled when s has one. */
void pf_pgsql_literal(struct pf_buf *b, const char *s);

/* Appends s as a double-quoted identifier. */
void pf_pgsql_ident(struct pf_buf *b, const char *s);

#endif

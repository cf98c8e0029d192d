/* Scratch servers for a restore drill: a PostgreSQL cluster made with the installed server's
 * initdb in a private directory, and a redis-server, both reachable only through unix sockets
 * in that directory (no TCP port, so nothing on the machine can reach them and no port can
 * clash), plus an empty folder for the Mastodon tree. The live servers are never touched.
 *
 * As root, PostgreSQL runs as the `postgres` OS user (initdb refuses root) and redis-server
 * as `redis` when those users exist. The folder is 0711: its servers' users (and a restore's
 * clients, which run as the database owner) pass through by names nobody can list. */
#ifndef PF_DRILL_SCRATCH_H
#define PF_DRILL_SCRATCH_H

#include <stdbool.h>

#include "common/err.h"

typedef struct pf_scratch {
    char dir[128];           /* the private root; removed by pf_scratch_stop */
    char pg_bindir[256];     /* the server binaries used (initdb, pg_ctl) */
    char pg_socket_dir[160]; /* PostgreSQL's unix socket directory: its "host" */
    int pg_port;                  /* names the socket file (.s.PGSQL.<port>); no TCP */
    const char *pg_superuser;     /* the cluster's superuser role (trust over the socket) */
    const char *pg_os_user;       /* OS user the cluster runs as, NULL: ourselves */
    char redis_socket[160];
    char live_dir[160]; /* an empty folder to restore the Mastodon tree into */
    bool pg_started, redis_started;
} pf_scratch;

/* Finds the newest /usr/lib/postgresql/N/bin holding initdb, unless bindir is given (the
 * config's drill_pg_bindir). Fails (PF_ENOTFOUND) naming the package to install. */
int pf_scratch_find_pg(const char *bindir, char out[256], pf_err *err);

/* Makes the directory under tmp (NULL: $TMPDIR or /var/tmp; at most 48 bytes, as unix
 * socket paths are short), runs initdb, starts both
 * servers and waits until they answer. On failure everything started is stopped and
 * removed, and err names the server and the last lines of its log. */
int pf_scratch_start(pf_scratch *s, const char *tmp, const char *pg_bindir, pf_err *err);

/* Stops both servers (immediately: the drill's data is thrown away) and removes the
 * directory. Safe on a partly started or zeroed scratch. */
void pf_scratch_stop(pf_scratch *s);

#endif

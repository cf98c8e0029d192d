#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cmd/pgphys.h"
#include "drill/drill.h"

const pf_cmd_syntax pf_syntax_drill = {
    .usage =
        "usage: permafrost drill [SNAPSHOT] [--tmp DIR] [--pg-bindir DIR] [--sample N] [--keep]\n"
        "                        [--to \"YYYY-MM-DD HH:MM:SS\"]\n\n"
        "Proves that a backup restores: the newest complete whole-server snapshot (or SNAPSHOT)\n"
        "is restored into scratch servers started for the purpose (a PostgreSQL cluster made\n"
        "with the installed server's initdb, a Redis, a folder), reachable only through\n"
        "sockets in a private folder under --tmp (default $TMPDIR or /var/tmp); the live\n"
        "servers are not touched. Then: the database's row counts equal the snapshot's,\n"
        "Mastodon's migrations are there, N media files (default 20) are byte-identical, the\n"
        "secrets hold the keys Mastodon needs, Redis loaded. The restore time (RTO) and the\n"
        "verdict are recorded in the repository (see status). Exit 0: every proof held;\n"
        "4: one failed (named); 1: the drill could not run. --keep leaves the scratch\n"
        "servers running and says where.\n"
        "A snapshot with a base backup (postgres = physical or both) is also recovered to a\n"
        "point in time in a second scratch cluster: --to TIME, or the end of the archived WAL,\n"
        "with WAL fetched from the repository; the time reached and that recovery's RTO are\n"
        "said, and a WAL file missing from the archive fails the drill, naming it.\n",
    .longopts = (const struct option[]){{"tmp", required_argument, 0, 't'},
                                        {"pg-bindir", required_argument, 0, 'b'},
                                        {"sample", required_argument, 0, 'n'},
                                        {"keep", no_argument, 0, 'k'},
                                        {"to", required_argument, 0, 'T'},
                                        {0, 0, 0, 0}},
    .max_args = 1};

int cmd_drill(pf_cmd_ctx *c)
{
    pf_drill_opts o = {.snapshot = c->argc ? c->argv[0] : NULL,
                       .pg_bindir = pf_config_get("drill_pg_bindir")};
    for (size_t i = 0; i < c->nopts; i++) {
        const char *v = c->opts[i].arg;
        switch (c->opts[i].c) {
        case 't':
            o.tmp = v;
            break;
        case 'b':
            o.pg_bindir = v;
            break;
        case 'k':
            o.keep = true;
            break;
        case 'T': {
            pf_err terr = {0};
            int32_t tz;
            if (strcmp(v, "latest") && pf_parse_local_time(v, &o.to_ns, &tz, &terr)) {
                pf_err_prefix(&terr, "drill --to");
                return pf_cli_fail(&terr);
            }
            break;
        }
        case 'n': {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 100000) {
                fprintf(stderr,
                        "permafrost: drill --sample wants a number from 1 to 100000, got \"%s\"\n",
                        v);
                return PF_EXIT_USAGE;
            }
            o.media_sample = (size_t)n;
            break;
        }
        }
    }
    pf_err err = {0};
    if (pf_cmd_open(c, &err))
        return pf_cli_fail(&err);
    o.workers = pf_cli_workers(c->repo);
    pf_buf restore_cmd = PF_BUF_INIT;
    /* As root (the drill timer), the scratch cluster's postgres user could not read the
     * passphrase or the repository: the WAL is fetched into a spool beside it instead. */
    if (!pf_pgphys_spool_wal()) {
        pf_pgphys_default_restore_command(&restore_cmd);
        o.restore_command = (const char *)restore_cmd.data;
    }
    pf_drill_result res;
    int rc = pf_drill_run(c->repo, &o, &res, &err);
    pf_buf_free(&restore_cmd);
    if (rc < 0)
        return pf_cli_fail(&err);
    if (pf_g.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "snapshot", res.snapshot);
        cJSON_AddBoolToObject(j, "ok", res.ok);
        cJSON_AddNumberToObject(j, "restore_seconds",
                                (double)(int64_t)(res.restore_seconds * 1000) / 1000);
        cJSON_AddNumberToObject(j, "total_seconds",
                                (double)(int64_t)(res.total_seconds * 1000) / 1000);
        cJSON *a = cJSON_AddArrayToObject(j, "checks");
        for (size_t i = 0; i < res.nchecks; i++) {
            cJSON *k = cJSON_CreateObject();
            cJSON_AddStringToObject(k, "name", res.checks[i].name);
            cJSON_AddBoolToObject(k, "ok", res.checks[i].ok);
            cJSON_AddStringToObject(k, "detail", res.checks[i].detail);
            cJSON_AddItemToArray(a, k);
        }
        pf_out_json(j);
    } else {
        printf("drill of snapshot %.8s: restored in %.1f s (the RTO), proved in %.1f s in all\n",
               res.snapshot, res.restore_seconds, res.total_seconds);
        if (res.pitr_seconds > 0)
            printf("point-in-time recovery: %.1f s (its RTO)\n", res.pitr_seconds);
        for (size_t i = 0; i < res.nchecks; i++)
            printf("  %-4s %-18s %s\n", res.checks[i].ok ? "ok" : "FAIL", res.checks[i].name,
                   res.checks[i].detail);
        printf(res.ok ? "verdict: the backup restores\n"
                      : "verdict: the backup does NOT restore as it should (see FAIL above)\n");
    }
    if (!res.ok && pf_g.json) {
        /* --json: every failure ends stderr with its error object (docs/JSON.md). */
        pf_err_set(&err, PF_ECORRUPT, "drill of snapshot %.8s failed (see \"checks\")",
                   res.snapshot);
        return pf_cli_fail(&err);
    }
    return res.ok ? PF_EXIT_OK : PF_EXIT_DAMAGED;
}

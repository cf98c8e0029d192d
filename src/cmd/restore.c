#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cmd/pgphys.h"
#include "repo/lock.h"
#include "repo/resolve.h"
#include "repo/restorer.h"

static const char restore_help[] =
    "usage: permafrost restore SNAPSHOT --target DIR [--keep-special] [--numeric-owner] "
    "[PATH...]\n"
    "       permafrost restore SNAPSHOT --live DIR [options]   (a Mastodon server)\n\n"
    "Restores a snapshot (or only PATHs inside it) into DIR exactly: content, modes,\n"
    "owners (when run as root), times in nanoseconds, symlinks, hardlinks and holes.\n"
    "Every block is authenticated first: corrupt data stops the restore (exit 4).\n\n"
    "  --keep-special   also create device nodes and FIFOs and keep setuid/setgid bits\n"
    "                   (by default they are left out, with one warning; -v names them)\n"
    "  --numeric-owner  give files their recorded numeric uid/gid; by default the\n"
    "                   recorded user and group names are looked up on this machine\n";

static void restore_progress(const pf_restore_stats *st, const char *current, void *ctx)
{
    double *started = ctx;
    (void)current;
    double el = pf_now() - *started;
    char done[32], rate[32];
    pf_human_bytes(st->bytes, done, sizeof done);
    pf_human_bytes(el > 0 ? (uint64_t)((double)st->bytes / el) : 0, rate, sizeof rate);
    pf_progress_line("[%d:%02d] %llu files, %s, %s/s", (int)el / 60, (int)el % 60,
                     (unsigned long long)st->files, done, rate);
}

int cmd_restore(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--live") || !strncmp(argv[i], "--live=", 7))
            return cmd_restore_mastodon(argc, argv);
        else if (!strcmp(argv[i], "--pg-physical-target") ||
                 !strncmp(argv[i], "--pg-physical-target=", 21))
            return cmd_restore_pgphys(argc, argv);
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"target", required_argument, 0, 't'},
                                         {"keep-special", no_argument, 0, 'S'},
                                         {"numeric-owner", no_argument, 0, 'N'},
                                         {0, 0, 0, 0}};
    const char *target = NULL;
    int keep_special = 0, numeric_owner = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ht:", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(restore_help, stdout);
            return PF_EXIT_OK;
        case 't':
            target = optarg;
            break;
        case 'S':
            keep_special = 1;
            break;
        case 'N':
            numeric_owner = 1;
            break;
        default:
            fputs(restore_help, stderr);
            return PF_EXIT_USAGE;
        }
    }
    if (optind >= argc || !target) {
        fputs(restore_help, stderr);
        return PF_EXIT_USAGE;
    }
    pf_err err = {0};
    pf_repo *r = pf_cli_open_repo(&err);
    if (!r)
        return pf_cli_fail(&err);
    pf_snapshot s;
    /* "latest" of a plain restore: the newest plain backup (that holds the PATHs asked
     * for), or the newest whole server when the PATHs are a Mastodon snapshot's (media). */
    const char *const *include = (const char *const *)(argv + optind + 1);
    size_t ninclude = (size_t)(argc - optind - 1);
    pf_snapshot_want want = {.kind = PF_SNAP_PATHS};
    if (ninclude)
        want = pf_snapshot_want_for(include, ninclude);
    struct pf_lock *lock = pf_cli_lock(r, false, "restore", &err);
    if (!lock || pf_repo_load_index(r, &err) ||
        pf_snapshot_resolve(r, argv[optind], &want, &s, &err)) {
        pf_cli_unlock(lock);
        pf_repo_free(r);
        return pf_cli_fail(&err);
    }
    double started = pf_now();
    pf_restore_opts o = {.include = (const char *const *)(argv + optind + 1),
                         .owners = geteuid() == 0,
                         .numeric_owner = numeric_owner,
                         .keep_special = keep_special,
                         /* an exact copy: the restorer never follows a link itself */
                         .outside_links = 1,
                         .left_out_hint = "--keep-special keeps them",
                         .workers = pf_cli_workers(r),
                         .progress = restore_progress,
                         .progress_ctx = &started};
    pf_restore_stats st = {0};
    int rc = PF_EXIT_OK;
    /* An include path that names nothing is a mistake worth stopping for. */
    for (int i = optind + 1; i < argc; i++) {
        pf_node n;
        if (pf_lookup_path(r, s.tree, argv[i], &n, &err)) {
            rc = pf_cli_fail(&err);
            goto out;
        }
        pf_node_free(&n);
    }
    if (pf_restore_tree(r, s.tree, target, &o, &st, &err)) {
        pf_err_prefix(&err, "restore");
        rc = pf_cli_fail(&err);
        goto out;
    }
    pf_progress_done();
    if (pf_g.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "snapshot", s.id);
        cJSON_AddNumberToObject(j, "files", (double)st.files);
        cJSON_AddNumberToObject(j, "dirs", (double)st.dirs);
        cJSON_AddNumberToObject(j, "bytes", (double)st.bytes);
        cJSON_AddNumberToObject(j, "seconds", pf_now() - started);
        pf_out_json(j);
    } else if (pf_g.verbosity >= 0) {
        char b[32];
        pf_human_bytes(st.bytes, b, sizeof b);
        printf("restored snapshot %.8s to %s: %llu files, %llu directories, %s in %.1f s\n", s.id,
               target, (unsigned long long)st.files, (unsigned long long)st.dirs, b,
               pf_now() - started);
    }
    if (st.errors)
        rc = PF_EXIT_INCOMPLETE;
out:
    pf_snapshot_free(&s);
    pf_cli_unlock(lock);
    pf_repo_free(r);
    return rc;
}

#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cmd/pgphys.h"
#include "common/log.h"
#include "repo/lock.h"

static const char backup_help[] =
    "usage: permafrost backup [--tag T]... [--time \"YYYY-MM-DD HH:MM:SS\"] PATH...\n"
    "       permafrost backup --live DIR [--only db,secrets,redis,media] [--exclude-cache]\n\n"
    "Backs up files and directories (each stored under its base name), reading only\n"
    "files that changed since the last snapshot of the same paths on this host.\n"
    "With --live, backs up a whole Mastodon server (see 'permafrost backup --live --help').\n"
    "Exit code 3: the snapshot was written but some files could not be read.\n";

static void backup_progress(const pf_archive_stats *st, const char *current, void *ctx)
{
    pf_backup_run *b = ctx;
    (void)current;
    double el = pf_now() - b->started;
    char done[32], rate[32], eta[32] = "";
    pf_human_bytes(st->bytes, done, sizeof done);
    pf_human_bytes(el > 0 ? (uint64_t)((double)st->bytes_read / el) : 0, rate, sizeof rate);
    if (b->estimate > st->bytes && el > 1 && st->bytes > 0) {
        double left = (double)(b->estimate - st->bytes) / ((double)st->bytes / el);
        snprintf(eta, sizeof eta, "  ETA %d:%02d", (int)left / 60, (int)left % 60);
    }
    pf_progress_line("[%d:%02d] %llu files, %s, %s/s%s", (int)el / 60, (int)el % 60,
                     (unsigned long long)st->files, done, rate, eta);
}

static int same_paths(const pf_snapshot *s, char **paths, size_t n)
{
    if (s->npaths != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->paths[i], paths[i]))
            return 0;
    return 1;
}

int pf_backup_begin(pf_backup_run *b, pf_repo *r, const char *parent_tag, char **paths,
                    size_t npaths, pf_err *err)
{
    memset(b, 0, sizeof *b);
    b->repo = r;
    b->started = pf_now();
    pf_snapshot_init(&b->snap);
    char host[HOST_NAME_MAX + 1] = "";
    gethostname(host, sizeof host - 1);
    const char *h = getenv("PERMAFROST_HOST");
    b->snap.host = strdup(h && *h ? h : host);
    struct passwd *pw = getpwuid(getuid());
    b->snap.user = strdup(pw ? pw->pw_name : "");
    b->snap.program = strdup("permafrost " PF_VERSION);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    b->snap.time_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    struct tm tm;
    localtime_r(&now.tv_sec, &tm);
    b->snap.tz_offset = (int32_t)tm.tm_gmtoff;
    for (size_t i = 0; i < npaths; i++)
        pf_snapshot_add_path(&b->snap, paths[i]);
    b->snap.kind = PF_SNAP_PATHS; /* a Mastodon backup says what it is after begin */

    b->lock = pf_cli_lock(r, false, "backup", err);
    if (!b->lock || pf_repo_load_index(r, err))
        return -1;
    pf_index_file orphans = {0};
    if (pf_repo_index_orphan_packs(r, &orphans, err))
        return -1;
    if (orphans.npacks)
        pf_info("reusing %zu pack%s left by an interrupted backup", orphans.npacks,
                orphans.npacks == 1 ? "" : "s");

    pf_snapshot *all = NULL;
    size_t n = 0;
    if (pf_repo_load_all_snapshots(r, &all, &n, err)) {
        pf_index_file_free(&orphans);
        return -1;
    }
    const pf_snapshot *parent = NULL;
    for (size_t i = n; i-- > 0;) {
        const pf_snapshot *s = &all[i];
        if (strcmp(s->host, b->snap.host))
            continue;
        if (parent_tag ? pf_snapshot_has_tag(s, parent_tag) : same_paths(s, paths, npaths)) {
            parent = s;
            break;
        }
    }
    if (parent) {
        memcpy(b->snap.parent, parent->id, sizeof b->snap.parent);
        cJSON *v = parent->stats ? cJSON_GetObjectItemCaseSensitive(parent->stats, "bytes") : NULL;
        b->estimate = cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : 0;
        pf_debug("parent snapshot %.8s", parent->id);
    }
    b->saver = pf_saver_new(r, pf_cli_workers(r), err);
    if (!b->saver) {
        pf_index_file_free(&orphans);
        pf_snapshots_free(all, n);
        return -1;
    }
    pf_saver_adopt(b->saver, &orphans);
    pf_saver_adopt(b->saver, &r->recovered);
    b->arch = pf_archiver_new(r, b->saver, parent ? parent->tree : NULL, err);
    pf_snapshots_free(all, n);
    if (!b->arch)
        return -1;
    pf_archiver_set_progress(b->arch, backup_progress, b);
    return 0;
}

int pf_backup_commit(pf_backup_run *b, pf_err *err)
{
    pf_dir *root = pf_archiver_root(b->arch);
    if (pf_dir_end(b->arch, root, b->snap.tree, err))
        return -1;
    /* Every pack and index file must be durable before the snapshot names them. */
    if (pf_saver_finish(b->saver, err))
        return -1;
    pf_archive_stats st;
    pf_saver_stats ss;
    pf_archiver_stats(b->arch, &st);
    pf_saver_stats_get(b->saver, &ss);
    cJSON_Delete(b->snap.stats);
    b->snap.stats = cJSON_CreateObject();
    cJSON_AddNumberToObject(b->snap.stats, "files", (double)st.files);
    cJSON_AddNumberToObject(b->snap.stats, "dirs", (double)st.dirs);
    cJSON_AddNumberToObject(b->snap.stats, "bytes", (double)st.bytes);
    cJSON_AddNumberToObject(b->snap.stats, "bytes_read", (double)st.bytes_read);
    cJSON_AddNumberToObject(b->snap.stats, "files_unchanged", (double)st.files_unchanged);
    cJSON_AddNumberToObject(b->snap.stats, "bytes_new", (double)ss.bytes_new);
    cJSON_AddNumberToObject(b->snap.stats, "bytes_stored", (double)ss.bytes_stored);
    cJSON_AddNumberToObject(b->snap.stats, "errors", (double)st.errors);
    cJSON_AddNumberToObject(b->snap.stats, "seconds", pf_now() - b->started);
    /* An unreadable entry makes the snapshot incomplete, whatever its kind: it says so
     * itself, and names what it lacks. */
    const char *const *skipped;
    size_t nskipped = pf_archiver_skipped(b->arch, &skipped);
    for (size_t i = 0; i < nskipped; i++)
        pf_snapshot_add_skipped(&b->snap, skipped[i]);
    if (st.errors) {
        b->snap.complete = false;
        b->snap.skipped_count = st.errors;
    }
    return pf_repo_save_snapshot(b->repo, &b->snap, err);
}

void pf_backup_report(pf_backup_run *b)
{
    pf_progress_done();
    if (pf_g.json) {
        pf_out_json(pf_snapshot_to_json(&b->snap));
        return;
    }
    if (pf_g.verbosity < 0)
        return;
    cJSON *st = b->snap.stats;
    double files = cJSON_GetObjectItem(st, "files")->valuedouble;
    double unchanged = cJSON_GetObjectItem(st, "files_unchanged")->valuedouble;
    double bytes = cJSON_GetObjectItem(st, "bytes")->valuedouble;
    double added = cJSON_GetObjectItem(st, "bytes_new")->valuedouble;
    double stored = cJSON_GetObjectItem(st, "bytes_stored")->valuedouble;
    double secs = cJSON_GetObjectItem(st, "seconds")->valuedouble;
    char hb[32], ha[32], hs[32];
    pf_human_bytes((uint64_t)bytes, hb, sizeof hb);
    pf_human_bytes((uint64_t)added, ha, sizeof ha);
    pf_human_bytes((uint64_t)stored, hs, sizeof hs);
    printf("snapshot %.8s saved: %.0f files (%.0f unchanged), %s; added %s (%s stored) in "
           "%.1f s\n",
           b->snap.id, files, unchanged, hb, ha, hs, secs);
}

void pf_backup_end(pf_backup_run *b)
{
    pf_archiver_free(b->arch);
    pf_saver_free(b->saver);
    pf_snapshot_free(&b->snap);
    pf_cli_unlock(b->lock);
    b->lock = NULL;
    b->arch = NULL;
    b->saver = NULL;
}

static const char *base_name(const char *path, char *buf, size_t n)
{
    snprintf(buf, n, "%s", path);
    size_t len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = 0;
    const char *slash = strrchr(buf, '/');
    return slash ? slash + 1 : buf;
}

int cmd_backup(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--live") || !strncmp(argv[i], "--live=", 7) ||
            !strcmp(argv[i], "--only") || !strncmp(argv[i], "--only=", 7))
            return cmd_backup_mastodon(argc, argv);
        else if (!strcmp(argv[i], "--pg-physical"))
            return cmd_backup_pgphys(argc, argv);
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"tag", required_argument, 0, 't'},
                                         {"time", required_argument, 0, 'T'},
                                         {0, 0, 0, 0}};
    const char *tags[64];
    size_t ntags = 0;
    const char *when = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ht:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(backup_help, stdout); return PF_EXIT_OK;
        case 't':
            if (ntags < 64)
                tags[ntags++] = optarg;
            break;
        case 'T': when = optarg; break;
        default: fputs(backup_help, stderr); return PF_EXIT_USAGE;
        }
    }
    if (optind == argc) {
        /* Plain `permafrost backup` with a configured Mastodon server, as a timer runs it. */
        if (pf_config_get("live"))
            return cmd_backup_mastodon(argc, argv);
        fprintf(stderr, "permafrost: backup needs at least one PATH, or --live DIR\n");
        return PF_EXIT_USAGE;
    }
    pf_err err = {0};
    int64_t time_ns = 0;
    int32_t tz = 0;
    if (when && pf_parse_local_time(when, &time_ns, &tz, &err))
        return pf_cli_fail(&err);
    char **paths = argv + optind;
    size_t npaths = (size_t)(argc - optind);
    char **abs = calloc(npaths, sizeof *abs);
    for (size_t i = 0; i < npaths; i++) {
        abs[i] = realpath(paths[i], NULL);
        if (!abs[i]) {
            pf_err_sys(&err, PF_ENOTFOUND, "cannot back up %s", paths[i]);
            for (size_t j = 0; j < i; j++)
                free(abs[j]);
            free(abs);
            return pf_cli_fail(&err);
        }
    }
    pf_repo *r = pf_cli_open_repo(&err);
    pf_backup_run b = {0};
    int rc = PF_EXIT_OK;
    if (!r || pf_backup_begin(&b, r, NULL, abs, npaths, &err)) {
        rc = pf_cli_fail(&err);
        goto out;
    }
    if (when) {
        b.snap.time_ns = time_ns;
        b.snap.tz_offset = tz;
    }
    for (size_t i = 0; i < ntags; i++)
        pf_snapshot_add_tag(&b.snap, tags[i]);
    for (size_t i = 0; i < npaths; i++) {
        char buf[PATH_MAX];
        const char *name = base_name(abs[i], buf, sizeof buf);
        if (!strcmp(name, "/") || !*name)
            name = "root";
        if (pf_archive_path(b.arch, pf_archiver_root(b.arch), name, abs[i], NULL, &err)) {
            pf_err_prefix(&err, "backup failed, no snapshot written");
            rc = pf_cli_fail(&err);
            goto out;
        }
    }
    if (pf_backup_commit(&b, &err)) {
        pf_err_prefix(&err, "backup failed, no snapshot written");
        rc = pf_cli_fail(&err);
        goto out;
    }
    pf_backup_report(&b);
    pf_archive_stats st;
    pf_archiver_stats(b.arch, &st);
    if (st.errors) {
        fprintf(stderr,
                "permafrost: snapshot %.8s is incomplete: %llu entr%s could not be read (see "
                "the warnings above)\n",
                b.snap.id, (unsigned long long)st.errors, st.errors == 1 ? "y" : "ies");
        rc = PF_EXIT_INCOMPLETE;
    }
out:
    pf_backup_end(&b);
    pf_repo_free(r);
    for (size_t i = 0; i < npaths; i++)
        free(abs[i]);
    free(abs);
    return rc;
}

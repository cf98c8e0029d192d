/* The shared backup run: see backup_run.h. */
#include "repo/backup_run.h"

#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

double pf_backup_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_progress(const pf_archive_stats *st, const char *current, void *ctx)
{
    pf_backup_run *b = ctx;
    (void)current;
    b->progress(b, st);
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

int pf_backup_begin(pf_backup_run *b, pf_repo *r, const pf_backup_opts *o, const char *parent_tag,
                    char **paths, size_t npaths, pf_err *err)
{
    memset(b, 0, sizeof *b);
    b->repo = r;
    b->started = pf_backup_now();
    b->progress = o->progress;
    b->ctx = o->ctx;
    pf_snapshot_init(&b->snap);
    char host[HOST_NAME_MAX + 1] = "";
    gethostname(host, sizeof host - 1);
    const char *h = getenv("PERMAFROST_HOST");
    b->snap.host = strdup(h && *h ? h : host);
    struct passwd *pw = getpwuid(getuid());
    b->snap.user = strdup(pw ? pw->pw_name : "");
    b->snap.program = strdup(o->program ? o->program : "permafrost");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    b->snap.time_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    struct tm tm;
    localtime_r(&now.tv_sec, &tm);
    b->snap.tz_offset = (int32_t)tm.tm_gmtoff;
    for (size_t i = 0; i < npaths; i++)
        pf_snapshot_add_path(&b->snap, paths[i]);
    b->snap.kind = PF_SNAP_PATHS; /* a Mastodon backup says what it is after begin */

    if (pf_repo_load_index(r, err))
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
        if (parent->components)
            b->parent_components = cJSON_Duplicate(parent->components, 1);
        pf_debug("parent snapshot %.8s", parent->id);
    }
    b->saver = pf_saver_new(r, o->workers, err);
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
    if (b->progress)
        pf_archiver_set_progress(b->arch, on_progress, b);
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
    cJSON_AddNumberToObject(b->snap.stats, "seconds", pf_backup_now() - b->started);
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

void pf_backup_abandon(pf_backup_run *b)
{
    pf_err ignored = {0};
    if (b->saver)
        pf_saver_finish(b->saver, &ignored);
}

void pf_backup_end(pf_backup_run *b)
{
    pf_archiver_free(b->arch);
    pf_saver_free(b->saver);
    pf_snapshot_free(&b->snap);
    cJSON_Delete(b->parent_components);
    b->parent_components = NULL;
    b->arch = NULL;
    b->saver = NULL;
}

/* The media component: the uploads under PAPERCLIP_ROOT_PATH (public/system), as a
 * directory tree with its metadata. With S3_ENABLED the uploads are in a bucket: there is
 * nothing here to save and the snapshot says so, unless the orchestration opened the bucket
 * (--media-from-s3): then its objects are the tree (component/s3mirror.h). Either tree is
 * restored into a directory, or with a bucket given, uploaded to it. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "component/component.h"
#include "component/layout.h"
#include "component/s3mirror.h"
#include "repo/restorer.h"

/* The run of a pack a writer reads at once from a local repository (pf_restore_opts). */
#define MEDIA_LOCAL_RUN (2u << 20)

static int media_backup_s3(pf_component_run *run, pf_err *err)
{
    const pf_component_settings *set = run->set;
    pf_info("media: mirroring %s%s", set->media_bucket_label,
            set->exclude_cache ? " (without cache/)" : "");
    pf_s3mirror_stats *st = calloc(1, sizeof *st);
    if (!st)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    run->state = st;
    pf_s3mirror_opts o = {.repo = run->repo,
                          .bucket = set->media_bucket,
                          .label = set->media_bucket_label,
                          .exclude_cache = set->exclude_cache,
                          .connections = set->workers,
                          .visit = set->media_visit,
                          .visit_ctx = set->media_visit_ctx};
    if (pf_s3mirror_backup(run->arch, run->root, PF_LAYOUT_MEDIA, &o, st, err))
        return -1;
    pf_info("media: %llu objects, %llu unchanged since the parent snapshot, %llu read "
            "(%.1f MiB)%s",
            (unsigned long long)st->objects, (unsigned long long)st->unchanged,
            (unsigned long long)st->read, (double)st->bytes_read / (1 << 20),
            st->skipped ? ", some left out (named above)" : "");
    return 0;
}

static int media_backup(pf_component_run *run, pf_err *err)
{
    const pf_component_settings *set = run->set;
    if (set->media_in_s3 && set->media_bucket)
        return media_backup_s3(run, err);
    if (set->media_in_s3) {
        pf_log(PF_LOG_WARN, "media: S3_ENABLED=true: uploads live in the S3 bucket and are "
                            "NOT in this snapshot; mirror them with --media-from-s3 "
                            "(media_from_s3 = true) or back the bucket up separately");
        return 0;
    }
    /* remote media Mastodon fetches again on demand */
    static const char *const no_cache[] = {"cache", NULL};
    pf_info("media: %s%s", set->media_root, set->exclude_cache ? " (without cache/)" : "");
    pf_archiver_set_visit(run->arch, set->media_visit, set->media_visit_ctx);
    int rc = pf_archive_path(run->arch, run->root, PF_LAYOUT_MEDIA, set->media_root,
                             set->exclude_cache ? no_cache : NULL, err);
    pf_archiver_set_visit(run->arch, NULL, NULL);
    if (rc) {
        if (err->code == PF_ENOTFOUND)
            pf_err_prefix(err, "%s (use --only to leave media out)", set->media_root);
        return -1;
    }
    return 0;
}

static void media_describe(pf_component_run *run, cJSON *entry, cJSON *manifest)
{
    (void)manifest;
    if (run->set->media_in_s3 && run->state) {
        const pf_s3mirror_stats *st = run->state;
        cJSON_AddStringToObject(entry, "status", st->skipped ? "incomplete" : "ok");
        cJSON_AddStringToObject(entry, "source", "s3");
        cJSON_AddStringToObject(entry, "bucket", run->set->media_bucket_label);
        cJSON_AddNumberToObject(entry, "objects", (double)st->objects);
        cJSON_AddNumberToObject(entry, "unchanged", (double)st->unchanged);
        cJSON_AddNumberToObject(entry, "read", (double)st->read);
        cJSON_AddNumberToObject(entry, "bytes_read", (double)st->bytes_read);
        cJSON_AddNumberToObject(entry, "skipped", (double)st->skipped);
        cJSON_AddBoolToObject(entry, "exclude_cache", run->set->exclude_cache);
        return;
    }
    if (run->set->media_in_s3) {
        cJSON_AddStringToObject(entry, "status", "skipped: S3_ENABLED=true");
        return;
    }
    /* Media are the last component: every unreadable entry so far is one of theirs. */
    pf_archive_stats ms;
    pf_archiver_stats(run->arch, &ms);
    cJSON_AddStringToObject(entry, "status", ms.errors ? "incomplete" : "ok");
    cJSON_AddBoolToObject(entry, "exclude_cache", run->set->exclude_cache);
}

static bool dir_nonempty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return false;
    bool found = false;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            found = true;
            break;
        }
    closedir(d);
    return found;
}

static int media_restore_check(pf_component_run *run, pf_err *err)
{
    const pf_component_settings *set = run->set;
    int rc = pf_lookup_path(run->repo, run->tree, PF_LAYOUT_MEDIA, &run->node[0], err);
    if (rc && err->code == PF_ENOTFOUND && set->media_in_s3) {
        *err = (pf_err){0}; /* taken with the media left in the bucket: nothing to restore */
        return 0;
    }
    if (rc)
        return -1;
    if (set->media_bucket) {
        /* uploaded: objects of the same name are replaced, as S3 does */
        pf_s3mirror_opts o = {.bucket = set->media_bucket, .label = set->media_bucket_label};
        return pf_s3mirror_probe(&o, err);
    }
    if (!set->force && dir_nonempty(set->media_root))
        return pf_err_set(err, PF_EEXIST,
                          "%s is not empty: refusing to restore media over it (use --force)",
                          set->media_root);
    return 0;
}

static int media_restore(pf_component_run *run, pf_err *err)
{
    const pf_component_settings *set = run->set;
    const pf_node *n = &run->node[0];
    if (!n->type)
        return 0;
    if (set->media_bucket) {
        pf_info("media: uploading to %s", set->media_bucket_label);
        pf_s3mirror_opts o = {.bucket = set->media_bucket,
                              .label = set->media_bucket_label,
                              .connections = set->workers};
        pf_s3mirror_put p = {.acl = set->media_acl};
        pf_s3mirror_stats st;
        if (pf_s3mirror_restore(run->repo, n, &o, &p, &st, err))
            return -1;
        pf_info("media: %llu objects (%.1f MiB) uploaded to %s", (unsigned long long)st.objects,
                (double)st.bytes / (1 << 20), set->media_bucket_label);
        return 0;
    }
    pf_info("media: restoring into %s", set->media_root);
    /* --force: the restored tree is the snapshot's; what it lacks goes (-v names it). */
    pf_restore_opts ro = {.owners = geteuid() == 0, .workers = set->workers, .exact = set->force};
    /* Each writer holds one run of a pack in memory, and the media run beside the database's
     * spool and pg_restore: from a local disk a 2 MiB read costs no more per byte than an
     * 8 MiB one, so the runs stay small (a remote store keeps the restorer's default, where
     * a request's latency is what a long run pays for). */
    if (!pf_store_properties(run->repo->store).remote)
        ro.run_max = MEDIA_LOCAL_RUN;
    pf_restore_stats rs = {0};
    if (pf_app_owner_mkdirs(set->media_root, set->owner))
        return pf_err_sys(err, PF_EIO, "cannot create %s", set->media_root);
    if (pf_restore_dir_into(run->repo, n, set->media_root, &ro, &rs, err))
        return -1;
    if (rs.removed)
        pf_info("media: removed %llu entr%s the snapshot does not hold (--force)",
                (unsigned long long)rs.removed, rs.removed == 1 ? "y" : "ies");
    /* Mastodon writes new uploads there as its own user. */
    if (set->owner)
        pf_app_owner_give_dir(set->media_root, set->owner, n->mode & 0777);
    return 0;
}

const pf_component pf_media_component = {.name = PF_LAYOUT_MEDIA,
                                         .backup = media_backup,
                                         .describe = media_describe,
                                         .restore_check = media_restore_check,
                                         .restore = media_restore};

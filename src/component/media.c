/* The media component: the uploads under PAPERCLIP_ROOT_PATH (public/system), as a
 * directory tree with its metadata. With S3_ENABLED the uploads are in a bucket and
 * there is nothing here to save: the snapshot says so. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "component/component.h"
#include "component/layout.h"
#include "repo/restorer.h"

static int media_backup(pf_component_run *run, pf_err *err)
{
    const pf_component_settings *set = run->set;
    if (set->media_in_s3) {
        pf_log(PF_LOG_WARN, "media: S3_ENABLED=true: uploads live in the S3 bucket and are "
                            "NOT in this snapshot; back the bucket up separately");
        return 0;
    }
    /* remote media Mastodon fetches again on demand */
    static const char *const no_cache[] = {"cache", NULL};
    pf_info("media: %s%s", set->media_root, set->exclude_cache ? " (without cache/)" : "");
    if (pf_archive_path(run->arch, run->root, PF_LAYOUT_MEDIA, set->media_root,
                        set->exclude_cache ? no_cache : NULL, err)) {
        if (err->code == PF_ENOTFOUND)
            pf_err_prefix(err, "%s (use --only to leave media out)", set->media_root);
        return -1;
    }
    return 0;
}

static void media_describe(pf_component_run *run, cJSON *entry, cJSON *manifest)
{
    (void)manifest;
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
    if (set->media_in_s3)
        return 0;
    if (pf_lookup_path(run->repo, run->tree, PF_LAYOUT_MEDIA, &run->node[0], err))
        return -1;
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
    pf_info("media: restoring into %s", set->media_root);
    pf_restore_opts ro = {.owners = geteuid() == 0, .workers = set->workers};
    pf_restore_stats rs = {0};
    if (pf_app_owner_mkdirs(set->media_root, set->owner))
        return pf_err_sys(err, PF_EIO, "cannot create %s", set->media_root);
    if (pf_restore_dir_into(run->repo, n, set->media_root, &ro, &rs, err))
        return -1;
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

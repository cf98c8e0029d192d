/* The secrets component: live/.env.production, the file without which nothing else of a
 * Mastodon server can be read (its keys encrypt columns of the database). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/log.h"
#include "component/component.h"
#include "component/layout.h"
#include "repo/restorer.h"

static int secrets_backup(pf_component_run *run, pf_err *err)
{
    pf_info("secrets: %s", run->set->env_path);
    pf_dir *d = pf_dir_begin(run->arch, run->root, PF_LAYOUT_SECRETS, err);
    if (!d)
        return -1;
    if (pf_archive_path(run->arch, d, PF_LAYOUT_ENV_FILE, run->set->env_path, NULL, err) ||
        (run->set->secrets_extra &&
         run->set->secrets_extra(run->set->secrets_extra_ctx, run->arch, d, err))) {
        pf_dir_abort(d);
        return -1;
    }
    return pf_dir_end(run->arch, d, NULL, err);
}

static void secrets_describe(pf_component_run *run, cJSON *entry, cJSON *manifest)
{
    (void)run;
    (void)manifest;
    cJSON_AddStringToObject(entry, "status", "ok");
}

static int secrets_restore_check(pf_component_run *run, pf_err *err)
{
    const pf_component_settings *set = run->set;
    struct stat st;
    if (pf_lookup_path(run->repo, run->tree, PF_LAYOUT_ENV_PATH, &run->node[0], err))
        return -1;
    if (!set->force && lstat(set->env_path, &st) == 0)
        return pf_err_set(err, PF_EEXIST, "%s exists: refusing to overwrite it (use --force)",
                          set->env_path);
    return 0;
}

/* Length of the key that line [p, end) assigns ("KEY=", "export KEY=", "KEY: "), and
 * where its value starts; 0 when it assigns none. */
static size_t line_key(const char *p, const char *end, const char **key, const char **val)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (end - p > 7 && !strncmp(p, "export ", 7))
        for (p += 7; p < end && *p == ' ';)
            p++;
    const char *k = p;
    while (p < end && (isalnum((unsigned char)*p) || *p == '_' || *p == '.'))
        p++;
    size_t kl = (size_t)(p - k);
    const char *q = p;
    while (q < end && (*q == ' ' || *q == '\t'))
        q++;
    if (!kl || q >= end || (*q != '=' && *q != ':'))
        return 0;
    q++;
    while (q < end && (*q == ' ' || *q == '\t'))
        q++;
    *key = k;
    *val = q;
    return kl;
}

/* Sets KEY to value in the text of a .env file, keeping every other byte: the value of
 * the last line that assigns KEY is replaced (up to the end of that line), or a line
 * "KEY=value" is appended. The value is written double-quoted when it needs quotes. */
static void env_text_set(pf_buf *text, const char *key, const char *value)
{
    const char *d = text->data ? (const char *)text->data : "";
    size_t n = text->len, kl = strlen(key);
    size_t vstart = 0, vend = 0;
    bool found = false;
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && d[e] != '\n')
            e++;
        const char *k = NULL, *v = NULL;
        size_t l = line_key(d + i, d + e, &k, &v);
        if (l == kl && !memcmp(k, key, kl)) {
            found = true;
            vstart = (size_t)(v - d);
            vend = e > i && d[e - 1] == '\r' ? e - 1 : e;
        }
        i = e + 1;
    }
    pf_buf val = PF_BUF_INIT;
    bool quote = strpbrk(value, " \t#'\"\\$") != NULL;
    if (quote) {
        pf_buf_u8(&val, '"');
        for (const char *p = value; *p; p++) {
            if (*p == '"' || *p == '\\' || *p == '$')
                pf_buf_u8(&val, '\\');
            pf_buf_u8(&val, (uint8_t)*p);
        }
        pf_buf_u8(&val, '"');
    } else {
        pf_buf_append_str(&val, value);
    }
    pf_buf out = PF_BUF_INIT;
    if (found) {
        pf_buf_append(&out, d, vstart);
        pf_buf_append(&out, val.data, val.len);
        pf_buf_append(&out, d + vend, n - vend);
    } else {
        pf_buf_append(&out, d, n);
        if (n && d[n - 1] != '\n')
            pf_buf_u8(&out, '\n');
        pf_buf_append_str(&out, key);
        pf_buf_u8(&out, '=');
        pf_buf_append(&out, val.data, val.len);
        pf_buf_u8(&out, '\n');
    }
    pf_buf_free(&val);
    if (text->data)
        explicit_bzero(text->data, text->len); /* the file holds secrets */
    pf_buf_free(text);
    *text = out;
}

/* Writes the secrets file atomically: `text` is the snapshot's, with the edits already
 * made. Mode as recorded (permission bits only); owner the app owner, as root. */
static int write_secrets(const pf_buf *text, const pf_node *n, const char *path,
                         const pf_app_owner *owner, pf_err *err)
{
    pf_file_owner as =
        owner ? (pf_file_owner){owner->uid, owner->gid, owner->name} : (pf_file_owner){0};
    return pf_write_file_atomic(path, text->data, text->len, n->mode & 0777, owner ? &as : NULL,
                                err);
}

static int secrets_restore(pf_component_run *run, pf_err *err)
{
    const pf_component_settings *set = run->set;
    pf_info("secrets: writing %s", set->env_path);
    for (int i = 0; i < set->nedit; i++) {
        env_text_set(set->env_text, set->edit_key[i], set->edit_val[i]);
        pf_info("secrets: %s set to %s in %s (the snapshot's value is not this "
                "machine's)",
                set->edit_key[i], set->edit_val[i], set->env_path);
    }
    for (int i = 0; i < set->nstale; i++)
        pf_warn("secrets: %s in %s still names the old server: edit it", set->stale[i],
                set->env_path);
    return write_secrets(set->env_text, &run->node[0], set->env_path, set->owner, err);
}

const pf_component pf_secrets_component = {.name = PF_LAYOUT_SECRETS,
                                           .backup = secrets_backup,
                                           .describe = secrets_describe,
                                           .restore_check = secrets_restore_check,
                                           .restore = secrets_restore};

/* restore --live: see mastodon.h. */
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "component/layout.h"
#include "mastodon/mastodon.h"
#include "mastodon/mediacheck.h"
#include "mastodon/s3media.h"
#include "repo/resolve.h"
#include "repo/restorer.h"

/* The first existing component of `path` below `dir` that is a symlink, or NULL: a
 * directory inside DIR replaced by a link would take the media somewhere else. Returns a
 * malloc'd path. */
static char *symlink_below(const char *path, const char *dir)
{
    size_t dl = strlen(dir);
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + dl; *p; p++) {
        if (*p != '/' || p == buf + dl)
            continue;
        *p = 0;
        struct stat st;
        bool link = lstat(buf, &st) == 0 && S_ISLNK(st.st_mode);
        char *hit = link ? strdup(buf) : NULL;
        *p = '/';
        if (link)
            return hit;
    }
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode) ? strdup(path) : NULL;
}

/* Whether `path` is `dir` or lies under it, read literally: no ".." component. */
static bool path_under(const char *path, const char *dir)
{
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    if (strncmp(path, dir, dl) || (path[dl] != '/' && path[dl] != 0))
        return false;
    for (const char *p = path; (p = strstr(p, "..")); p += 2)
        if ((p == path || p[-1] == '/') && (p[2] == '/' || p[2] == 0))
            return false;
    return true;
}

/* Loads the file n (at most max bytes) into *out. A snapshot from a compromised server
 * can name a huge file cheaply (one deduplicated blob, repeated), so the size is checked
 * before anything is read, and again as blobs come in. */
static int load_text(pf_repo *r, const pf_node *n, size_t max, pf_buf *out, pf_err *err)
{
    pf_buf tmp = PF_BUF_INIT;
    if (n->size > max)
        return pf_err_set(err, PF_ECORRUPT,
                          "is %llu bytes, more than the %zu a settings file may have: refusing it",
                          (unsigned long long)n->size, max);
    for (size_t i = 0; i < n->nblobs; i++) {
        if (pf_repo_load_blob(r, n->blobs[i], &tmp, err)) {
            pf_buf_free(&tmp);
            return -1;
        }
        if (tmp.len > max) {
            pf_buf_free(&tmp);
            return pf_err_set(err, PF_ECORRUPT,
                              "holds more than its recorded size: refusing it (damaged or forged)");
        }
    }
    *out = tmp;
    return 0;
}

/* What the restored .env.production must say differently from the snapshot's, so that
 * Mastodon finds what was restored here: every other byte is kept. */
typedef struct env_edits {
    const char *key[8], *val[8], *stale[8];
    char buf[2][32];
    int n, nstale;
} env_edits;

static void find_edits(const pf_mastodon_restore_opts *o, const pf_mastodon_env *env,
                       const char *media_root, char *snap_media, env_edits *e)
{
    if (snap_media && strcmp(snap_media, media_root)) {
        e->key[e->n] = "PAPERCLIP_ROOT_PATH";
        e->val[e->n++] = media_root;
    }
    bool db_url = pf_mastodon_env_get(env, "DATABASE_URL") != NULL;
    bool redis_url = pf_mastodon_env_get(env, "REDIS_URL") != NULL;
    if (o->pg_host && (!env->db_host || strcmp(o->pg_host, env->db_host))) {
        if (db_url)
            e->stale[e->nstale++] = "DATABASE_URL (host)";
        e->key[e->n] = "DB_HOST";
        e->val[e->n++] = o->pg_host;
    }
    if (o->pg_port && o->pg_port != (env->db_port ? env->db_port : 5432)) {
        if (db_url)
            e->stale[e->nstale++] = "DATABASE_URL (port)";
        snprintf(e->buf[0], sizeof e->buf[0], "%d", o->pg_port);
        e->key[e->n] = "DB_PORT";
        e->val[e->n++] = e->buf[0];
    }
    if (o->redis_host && (!env->redis.host || strcmp(o->redis_host, env->redis.host))) {
        if (redis_url)
            e->stale[e->nstale++] = "REDIS_URL (host)";
        e->key[e->n] = "REDIS_HOST";
        e->val[e->n++] = o->redis_host;
    }
    if (o->redis_port && o->redis_port != env->redis.port) {
        if (redis_url)
            e->stale[e->nstale++] = "REDIS_URL (port)";
        snprintf(e->buf[1], sizeof e->buf[1], "%d", o->redis_port);
        e->key[e->n] = "REDIS_PORT";
        e->val[e->n++] = e->buf[1];
    }
}

/* The media go where this machine says, never where the snapshot says: its
 * PAPERCLIP_ROOT_PATH could name any directory (finding 4 of issue 10). Returns a malloc'd
 * path or NULL with err. */
static char *target_media_root(const pf_mastodon_restore_opts *o, pf_err *err)
{
    pf_mastodon_env tenv = {0};
    pf_err terr = {0};
    const char *from = NULL;
    char *root;
    if (o->media_root) {
        root = strdup(o->media_root);
    } else if (pf_mastodon_env_load(o->live, &tenv, &terr) == 0) {
        root = strdup(tenv.paperclip_root);
        from = "PAPERCLIP_ROOT_PATH of the target's .env.production";
    } else {
        root = pf_mastodon_media_root(o->live, NULL);
    }
    pf_mastodon_env_free(&tenv);
    if (!root) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        return NULL;
    }
    char *link = path_under(root, o->live) ? symlink_below(root, o->live) : NULL;
    if (link) {
        pf_err_set(err, PF_EUSAGE,
                   "%s is a symbolic link: refusing to restore the media through it (name "
                   "the real directory with --media-root)",
                   link);
        free(link);
    } else if (!o->media_root && !path_under(root, o->live)) {
        pf_err_set(err, PF_EUSAGE,
                   "the media directory %s (%s) is outside %s: name it with --media-root "
                   "%s to restore there",
                   root, from ? from : "default", o->live, root);
    } else {
        return root;
    }
    free(root);
    return NULL;
}

static void todo_add(pf_mastodon_restored *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void todo_add(pf_mastodon_restored *out, const char *fmt, ...)
{
    if (out->ntodo >= PF_MASTODON_TODO_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) >= 0)
        out->todo[out->ntodo++] = s;
    va_end(ap);
}

/* The steps an operator has left after a restore, in order. */
/* The host files: what to run after writing them, or how to write them. */
static void host_left(const pf_mastodon_restore_opts *o, const pf_snapshot *s, bool restored,
                      pf_mastodon_restored *out)
{
    static const char reload[] = "systemctl daemon-reload, check and reload nginx (nginx -t && "
                                 "systemctl reload nginx) and the certificates (certbot renew "
                                 "--dry-run)";
    const char *root = o->host_root && o->host_root[0] ? o->host_root : "/";
    if (restored) {
        todo_add(out, "the machine's files are back under %s: run %s", root, reload);
        return;
    }
    cJSON *h = s->components ? cJSON_GetObjectItemCaseSensitive(s->components, "host") : NULL;
    cJSON *count = h ? cJSON_GetObjectItemCaseSensitive(h, "count") : NULL;
    if (!cJSON_IsNumber(count) || count->valuedouble < 1)
        return;
    todo_add(out,
             "the snapshot also holds %d of the machine's files (Let's Encrypt, the nginx "
             "site, the mastodon-* units, the crontab), left alone; when this machine "
             "takes over, restore them with:\n"
             "       permafrost restore %.8s --live %s --only host\n"
             "     (it lists what it writes first; --force replaces files that differ), then "
             "run %s",
             (int)count->valuedouble, s->id, o->live, reload);
}

static void what_is_left(const pf_mastodon_restore_opts *o, const pf_snapshot *s,
                         const pf_mastodon_env *env, const pf_app_owner *owner, const env_edits *e,
                         bool host_restored, pf_mastodon_restored *out)
{
    const char *live = o->live;
    host_left(o, s, host_restored, out);
    if (o->only && !(o->only & ~pf_component_bit(&pf_host_component)))
        return; /* only the machine's files: the server's steps are another restore's */
    cJSON *mver = s->manifest ? cJSON_GetObjectItem(s->manifest, "mastodon") : NULL;
    bool known = cJSON_IsString(mver) && mver->valuestring[0];
    const char *v = known ? mver->valuestring : NULL;
    char here[64], gemfile[4200];
    pf_mastodon_version(live, here, sizeof here);
    snprintf(gemfile, sizeof gemfile, "%s/Gemfile", live);
    if (access(gemfile, F_OK) != 0) {
        /* DIR is not empty any more: `git clone` into it would fail. */
        todo_add(out,
                 "install Mastodon's code into %s (it now holds .env.production and the "
                 "media, so clone in place), as %s:\n"
                 "       cd %s && git init -q && git remote add origin "
                 "https://github.com/mastodon/mastodon.git\n"
                 "       git fetch -q --tags origin && git checkout %s%s\n"
                 "     then bundle install and yarn install as the install guide says",
                 live, geteuid() == 0 ? owner->name : "Mastodon's user", live,
                 v ? "v" : "<the old server's version tag>", v ? v : "");
    } else if (v && here[0] && strcmp(v, here)) {
        todo_add(out,
                 "the code in %s is Mastodon %s but the snapshot is of %s: check out v%s, or "
                 "run RAILS_ENV=production bundle exec rails db:migrate",
                 live, here, v, v);
    }
    for (int i = 0; i < e->nstale; i++)
        todo_add(out, "edit %s in %s/.env.production: it still names the old server", e->stale[i],
                 live);
    todo_add(out, "start the services: systemctl start mastodon-web mastodon-sidekiq "
                  "mastodon-streaming");
    todo_add(out, "rebuild home feeds: RAILS_ENV=production bin/tootctl feeds build");
    size_t before = out->ntodo;
    if (s->manifest)
        out->ntodo =
            pf_safety_restore_todo(s->manifest, out->todo, out->ntodo, PF_MASTODON_TODO_MAX);
    bool search_said = false;
    for (size_t i = before; i < out->ntodo; i++)
        search_said |= strstr(out->todo[i], "tootctl search deploy") != NULL;
    if (env->es_enabled && !search_said) /* a snapshot older than its "search" entry */
        todo_add(out, "rebuild the search index: RAILS_ENV=production bin/tootctl search deploy");
    out->media_in_s3 = env->s3_enabled;
}

/* A snapshot without (some of) the remote files Mastodon caches: the commands that fetch
 * them again, with how many files each concerns (mastodon/mediacheck.h). */
static void refetch_left(const pf_snapshot *s, const char *live, const pf_app_owner *owner,
                         pf_mastodon_restored *out)
{
    const pf_media_check *m = &s->media_check;
    char *lines = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&lines, &len);
    if (!f)
        return;
    int n = pf_mediacheck_refetch_advice(m, (int64_t)time(NULL), "       ", f);
    fclose(f);
    if (n > 0 && len && lines[len - 1] == '\n')
        lines[len - 1] = 0;
    if (n > 0)
        todo_add(out, "fetch again the remote files this snapshot lacks (%s), as %s in %s:\n%s",
                 m->exclude_cache ? "it was taken with --exclude-cache" : "missing from its cache/",
                 geteuid() == 0 ? owner->name : "Mastodon's user", live, lines);
    free(lines);
}

/* Where and to when a point-in-time restore recovers the database (mastodon/pitr.c). */
static void pitr_settings(const pf_mastodon_restore_opts *o, const pf_snapshot *db,
                          pf_mastodon_restored *out, pf_pgphys_restore_opts *po)
{
    char data_dir[4096];
    pf_mastodon_pitr_dirs(db, data_dir, sizeof data_dir, out->conf_dir, sizeof out->conf_dir);
    snprintf(out->data_dir, sizeof out->data_dir, "%s", o->pg_data_dir ? o->pg_data_dir : data_dir);
    *po = (pf_pgphys_restore_opts){.target = out->data_dir,
                                   .to_ns = o->to_ns ? o->to_ns : INT64_MAX,
                                   .restore_command = o->restore_command,
                                   .start = true,
                                   .force = o->force,
                                   .ctl_options = o->pg_ctl_options,
                                   .pg_bindir = o->pg_bindir,
                                   .config_dir = o->pg_data_dir ? NULL : out->conf_dir,
                                   .workers = o->workers};
}

static void pitr_result(const pf_component_run *run, const pf_snapshot *rest,
                        pf_mastodon_restored *out)
{
    const pf_pgphys_restored *p = pf_pgphys_component_result(run);
    out->pitr = true;
    memcpy(out->db_id, run->set->pgphys_snap->id, sizeof out->db_id);
    out->rest_ns = rest->time_ns;
    if (!p)
        return;
    snprintf(out->reached, sizeof out->reached, "%s", p->reached);
    out->reached_ns = p->reached_ns;
    out->db_end_ns = p->end_ns;
    out->gaps = p->gaps;
}

/* --media-to-s3: opens the bucket of the target's .env.production (when this restore does not
 * write it, and it is there: own) or else of the snapshot's, for the media component. */
static int open_media_bucket(const char *live, const char *env_path, const pf_mastodon_env *snap,
                             bool own, pf_mastodon_env *target, pf_component_settings *set,
                             char *label, size_t ln, pf_err *err)
{
    const pf_mastodon_env *be = snap;
    const char *from = "the snapshot's .env.production";
    pf_err ignored = {0};
    if (own && pf_mastodon_env_load(live, target, &ignored) == 0) {
        be = target;
        from = env_path;
    }
    if (!(set->media_bucket = pf_s3media_open(be, err)))
        return pf_err_prefix(err, "restore: media: --media-to-s3 with the S3 settings of %s", from);
    pf_s3media_label(be, label, ln);
    set->media_bucket_label = label;
    /* Mastodon's own default ACL; S3_PERMISSION= (empty) for buckets without ACLs. */
    const char *perm = pf_mastodon_env_get(be, "S3_PERMISSION");
    set->media_acl = perm ? perm : "public-read";
    pf_info("media: to %s (the S3 settings of %s)", label, from);
    return 0;
}

static size_t media_index(void)
{
    size_t i = 0;
    while (pf_components[i] && pf_components[i] != &pf_media_component)
        i++;
    return i;
}

/* Does the snapshot hold the media of a server that kept them on S3 (backup
 * --media-from-s3)? */
static bool mirrored(const pf_snapshot *s)
{
    cJSON *m = s->components ? cJSON_GetObjectItemCaseSensitive(s->components, "media") : NULL;
    cJSON *src = m ? cJSON_GetObjectItemCaseSensitive(m, "source") : NULL;
    return cJSON_IsString(src) && !strcmp(src->valuestring, "s3");
}

/* Where the media went (restored: this restore wrote them), against where the restored
 * .env.production makes Mastodon look. */
static void media_left(const pf_mastodon_env *env, const pf_component_settings *set,
                       const char *media_root, bool held, bool restored, pf_mastodon_restored *out)
{
    if (!held)
        return; /* out->media_in_s3 says it: they stayed in the bucket */
    out->media_in_s3 = false;
    if (!restored)
        return;
    char label[2200];
    if (set->media_bucket && !env->s3_enabled)
        todo_add(out,
                 "the media were uploaded to %s, but .env.production has no S3_ENABLED=true: set "
                 "it (and S3_BUCKET, S3_ENDPOINT, S3_REGION, the AWS_* keys) so that Mastodon "
                 "serves them from there",
                 set->media_bucket_label);
    else if (!set->media_bucket && env->s3_enabled) {
        pf_s3media_label(env, label, sizeof label);
        todo_add(out,
                 "the media were restored into %s, but .env.production has S3_ENABLED=true: "
                 "Mastodon looks for them in %s. Upload them there (restore --only media "
                 "--media-to-s3) or set S3_ENABLED=false",
                 media_root, label);
    }
}

/* ---- the component runner ------------------------------------------------------------
 * On restore the components are independent (each writes its own server or directory, and
 * every check ran before): they all run at once, one thread each, so the database's
 * pg_restore and the media's writes overlap. A failure stops nothing already running; the
 * first failing component in registry order is the one reported, and out->restored holds
 * every one that finished. The runner knows no component by name. */

typedef struct restore_job {
    const pf_component *c;
    pf_component_run *run;
    pthread_t thread;
    bool started;
    int rc;
    pf_err err;
} restore_job;

static void *restore_thread(void *arg)
{
    restore_job *j = arg;
    j->rc = j->c->restore(j->run, &j->err);
    return NULL;
}

static int restore_components(pf_component_run *runs, unsigned only, pf_mastodon_restored *out,
                              pf_err *err)
{
    restore_job jobs[8];
    size_t n = pf_component_count();
    memset(jobs, 0, sizeof jobs);
    for (size_t i = 0; i < n && i < 8; i++) {
        restore_job *j = &jobs[i];
        j->c = pf_components[i];
        j->run = &runs[i];
        if (!(only & (1u << i)))
            continue;
        /* Without a thread it runs here, in turn. */
        j->started = pthread_create(&j->thread, NULL, restore_thread, j) == 0;
        if (!j->started)
            restore_thread(j);
    }
    int rc = 0;
    for (size_t i = 0; i < n && i < 8; i++) {
        restore_job *j = &jobs[i];
        if (!(only & (1u << i)))
            continue;
        if (j->started)
            pthread_join(j->thread, NULL);
        if (!j->rc) {
            out->restored |= 1u << i;
        } else if (!rc) {
            *err = j->err;
            pf_component_error(err, "restore", j->c, j->run);
            out->failed = 1u << i;
            rc = -1;
        }
    }
    return rc;
}

int pf_mastodon_restore(pf_repo *r, const pf_mastodon_restore_opts *o, pf_mastodon_restored *out,
                        pf_err *err)
{
    memset(out, 0, sizeof *out);
    const size_t ncomp = pf_component_count();
    const unsigned host_bit = pf_component_bit(&pf_host_component);
    /* A whole restore leaves the machine's files alone unless asked (component.h). */
    unsigned all = pf_component_all(), only = o->only ? o->only : all & ~host_bit;
    if (o->host_files)
        only |= host_bit;
    /* latest: the whole server, or with --only the newest snapshot with those parts */
    const char *wanted[8];
    size_t nwanted = 0;
    for (size_t i = 0; o->only && o->only != all && i < ncomp && nwanted < 8; i++)
        if (o->only & (1u << i))
            wanted[nwanted++] = pf_components[i]->name;
    pf_snapshot_want whole = {.kind = PF_SNAP_MASTODON,
                              .complete = true,
                              .components = nwanted ? wanted : NULL,
                              .ncomponents = nwanted};
    pf_snapshot s, sdb;
    bool pitr;
    if (pf_mastodon_restore_pick(r, o, &whole, &s, &sdb, &pitr, err)) {
        pf_snapshot_free(&s);
        pf_snapshot_free(&sdb);
        return -1;
    }
    only = pf_mastodon_pitr_only(only, o, &s, pitr);
    double started = pf_backup_now();
    int rc = -1;
    pf_node n_env = {0};
    pf_mastodon_env env = {0};
    pf_buf envtext = PF_BUF_INIT;
    char *media_root = NULL, *snap_media = NULL;
    pf_mastodon_env s3env = {0}; /* --media-to-s3: the target's own .env.production */
    pf_store *bucket = NULL;
    char bucket_label[2200] = "";
    pf_component_run runs[8];
    memset(runs, 0, sizeof runs);
    const char *live = o->live;
    const unsigned secrets_bit = pf_component_bit(&pf_secrets_component);

    /* The restored server's settings come from the snapshot's own .env.production; a
     * snapshot taken with --only (no secrets) uses the one already in the target. */
    int have_secrets = pf_lookup_path(r, s.tree, PF_LAYOUT_ENV_PATH, &n_env, err) == 0;
    if (have_secrets) {
        if (load_text(r, &n_env, PF_MASTODON_ENV_MAX_FILE, &envtext, err) ||
            pf_mastodon_env_parse((const char *)envtext.data, envtext.len, &env, err)) {
            pf_err_prefix(err, "snapshot's .env.production");
            goto out;
        }
    } else {
        pf_mastodon_env_free(&env);
        memset(&env, 0, sizeof env);
        if (pf_mastodon_env_load(live, &env, err)) {
            pf_err_prefix(err,
                          "snapshot %.8s holds no secrets (taken with --only) and "
                          "the target has no .env.production to take the settings from",
                          s.id);
            goto out;
        }
        if (only & secrets_bit) {
            pf_info("snapshot %.8s holds no secrets: using %s/.env.production", s.id, live);
            only &= ~secrets_bit;
        }
    }
    /* Only the machine's files: where the media would go is not this restore's question. */
    if (!(only & ~host_bit)) {
        if (!(media_root = pf_mastodon_media_root(live, env.paperclip_root))) {
            pf_err_set(err, PF_EGENERIC, "out of memory");
            goto out;
        }
    } else if (!(media_root = target_media_root(o, err))) {
        goto out;
    }
    env_edits e;
    memset(&e, 0, sizeof e);
    snap_media = pf_mastodon_media_root(live, env.paperclip_root);
    find_edits(o, &env, media_root, snap_media, &e);

    /* The admin connects where the app will: its socket directory, when DB_HOST names one;
     * otherwise libpq's default socket (a TCP DB_HOST would need an admin password). */
    const char *admin_host = o->pg_host;
    if (!admin_host && env.db_host && env.db_host[0] == '/')
        admin_host = env.db_host;
    char env_path[4096];
    snprintf(env_path, sizeof env_path, "%s/.env.production", live);
    pf_app_owner owner = {0};
    pf_component_settings set = {
        .live = live,
        .env_path = env_path,
        .force = o->force,
        .workers = o->workers,
        .env_text = &envtext,
        .edit_key = e.key,
        .edit_val = e.val,
        .nedit = e.n,
        .stale = e.stale,
        .nstale = e.nstale,
        .pg_restore = {.host = admin_host,
                       .port = o->pg_port,
                       .admin_user = o->pg_admin,
                       .admin_password = o->pg_admin_password,
                       .dbname = env.db_name,
                       .owner = env.db_user,
                       .owner_password = env.db_pass,
                       .jobs = o->jobs,
                       .force = o->force,
                       .as_admin = o->pg_restore_as_admin},
        .redis = env.redis,
        .sidekiq = env.sidekiq_redis_separate && !o->no_sidekiq ? &env.sidekiq_redis : NULL,
        .media_root = media_root,
        .media_in_s3 = env.s3_enabled,
        .host_root = o->host_root,
        .local_domain = env.local_domain};
    if (o->redis_host) {
        set.redis.host = (char *)o->redis_host;
        set.redis.socket = NULL;
    }
    if (o->redis_socket) {
        set.redis.socket = (char *)o->redis_socket;
        set.redis.host = NULL;
    }
    if (o->redis_port)
        set.redis.port = o->redis_port;
    pf_pgphys_restore_opts po;
    if (pitr) {
        pitr_settings(o, &sdb, out, &po);
        set.pgphys = &po;
        set.pgphys_snap = &sdb;
    }

    /* Issue 16: --media-to-s3, the bucket of the target's .env.production. */
    const unsigned media_bit = pf_component_bit(&pf_media_component);
    if (o->media_to_s3 && (only & media_bit) &&
        open_media_bucket(live, env_path, &env, !(only & secrets_bit), &s3env, &set, bucket_label,
                          sizeof bucket_label, err))
        goto out;
    bucket = set.media_bucket;

    /* Issue 16, before any other check: a target whose .env.production has other
     * encryption keys than the snapshot (mastodon:setup run again), and a pgbouncer where
     * PostgreSQL itself is needed. */
    const unsigned pg_bit = pf_component_bit(&pf_postgres_component),
                   phys_bit = pf_component_bit(&pf_pgphys_component);
    char pg_real_host[256];
    if ((only & (pg_bit | phys_bit)) &&
        (pf_safety_restore_keys_check(r, s.tree, have_secrets ? &env : NULL, env_path, o->force,
                                      err) ||
         ((only & pg_bit) && pf_safety_restore_pg(&set.pg_restore, o->pgbouncer_ini, pg_real_host,
                                                  sizeof pg_real_host, err)))) {
        pf_component_error(err, "restore",
                           only & pg_bit ? &pf_postgres_component : &pf_pgphys_component, &runs[0]);
        goto out;
    }

    /* Every check before any change. */
    for (size_t i = 0; i < ncomp; i++) {
        const pf_component *c = pf_components[i];
        runs[i] = (pf_component_run){.set = &set, .repo = r, .tree = s.tree};
        if ((only & (1u << i)) && c->restore_check(&runs[i], err)) {
            pf_component_error(err, "restore", c, &runs[i]);
            goto out;
        }
    }
    pf_app_owner_find(live, have_secrets ? &n_env : NULL, &owner);
    set.owner = geteuid() == 0 ? &owner : NULL;
    if ((only & ~host_bit) && pf_app_owner_mkdirs(live, set.owner)) {
        pf_err_sys(err, PF_EIO, "cannot create %s", live);
        goto out;
    }
    if (!(only & secrets_bit))
        for (int i = 0; i < e.n && e.nstale < 8; i++) {
            /* Not ours to write this time: say what the file should say. */
            pf_warn("secrets: this restore used %s=%s; check that %s says the same", e.key[i],
                    e.val[i], env_path);
            e.stale[e.nstale++] = e.key[i];
        }
    memcpy(out->id, s.id, sizeof out->id);
    out->selected = only;
    int failed = restore_components(runs, only, out, err);
    for (size_t i = 0; i < ncomp; i++)
        if ((out->restored & (1u << i)) && pf_components[i] == &pf_pgphys_component)
            pitr_result(&runs[i], &s, out);
    if (failed)
        goto out;
    out->domain = env.local_domain ? strdup(env.local_domain) : NULL;
    what_is_left(o, &s, &env, &owner, &e, only & host_bit, out);
    media_left(&env, &set, media_root, runs[media_index()].node[0].type != 0 || mirrored(&s),
               (only & media_bit) != 0, out);
    if (only & pf_component_bit(&pf_media_component))
        refetch_left(&s, live, &owner, out);
    out->seconds = pf_backup_now() - started;
    rc = 0;
out:
    for (size_t i = 0; i < ncomp; i++) {
        for (int k = 0; k < PF_COMPONENT_NODES; k++)
            pf_node_free(&runs[i].node[k]);
        free(runs[i].state);
    }
    if (bucket)
        pf_store_free(bucket);
    pf_mastodon_env_free(&s3env);
    free(media_root);
    free(snap_media);
    pf_buf_free(&envtext);
    pf_mastodon_env_free(&env);
    pf_node_free(&n_env);
    pf_snapshot_free(&s);
    pf_snapshot_free(&sdb);
    return rc;
}

void pf_mastodon_restored_free(pf_mastodon_restored *out)
{
    for (size_t i = 0; i < out->ntodo; i++)
        free(out->todo[i]);
    free(out->domain);
    memset(out, 0, sizeof *out);
}

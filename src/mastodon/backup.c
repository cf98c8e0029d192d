/* backup --live: see mastodon.h. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "component/layout.h"
#include "mastodon/mastodon.h"
#include "mastodon/mediacheck.h"
#include "mastodon/s3media.h"

/* version.rb spells it as three methods: def major / minor / patch, each returning a number. */
void pf_mastodon_version(const char *live, char *out, size_t n)
{
    char path[4096];
    out[0] = 0;
    snprintf(path, sizeof path, "%s/lib/mastodon/version.rb", live);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    int parts[3] = {-1, -1, -1}, want = -1;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ')
            p++;
        if (!strncmp(p, "def major", 9))
            want = 0;
        else if (!strncmp(p, "def minor", 9))
            want = 1;
        else if (!strncmp(p, "def patch", 9))
            want = 2;
        else if (want >= 0 && *p >= '0' && *p <= '9') {
            parts[want] = atoi(p);
            want = -1;
        }
    }
    fclose(f);
    if (parts[0] >= 0 && parts[1] >= 0)
        snprintf(out, n, "%d.%d.%d", parts[0], parts[1], parts[2] < 0 ? 0 : parts[2]);
}

static int secrets_extra(void *ctx, pf_archiver *a, pf_dir *secrets, pf_err *err)
{
    return pf_safety_backup_secrets(ctx, a, secrets, err);
}

/* Everything that must see the database as the dump does, on the dump's own connection:
 * the encryption keys' proof (issue 16), then the files the rows name (the media check). */
/* What a first backup will read, for its progress total and ETA, without a walk of the
 * media: the tables' own size (about what pg_dump writes: rows, not indexes) plus every file
 * size Mastodon's rows record (Paperclip's *_file_size columns, where this schema has them).
 * 0 when the database cannot say. Runs in a savepoint: the dump's transaction must survive a
 * failed query. */
static uint64_t first_backup_estimate(PGconn *conn)
{
    static const char *const cols[][2] = {
        {"media_attachments", "file_file_size"}, {"media_attachments", "thumbnail_file_size"},
        {"accounts", "avatar_file_size"},        {"accounts", "header_file_size"},
        {"custom_emojis", "image_file_size"},    {"preview_cards", "image_file_size"},
        {"site_uploads", "file_file_size"}};
    PGresult *r = PQexec(conn, "SAVEPOINT pf_estimate");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok)
        return 0;
    pf_buf sql = PF_BUF_INIT;
    pf_buf_append_str(&sql, "SELECT (SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c "
                            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = "
                            "'public' AND c.relkind = 'r')::bigint");
    for (size_t i = 0; i < sizeof cols / sizeof *cols; i++) {
        char q[300];
        snprintf(q, sizeof q,
                 "SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' AND "
                 "table_name = '%s' AND column_name = '%s'",
                 cols[i][0], cols[i][1]);
        r = PQexec(conn, q);
        bool has = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
        PQclear(r);
        if (has)
            pf_buf_printf(&sql, " + (SELECT coalesce(sum(%s), 0) FROM %s)::bigint", cols[i][1],
                          cols[i][0]);
    }
    pf_buf_append(&sql, "", 1);
    r = PQexec(conn, (const char *)sql.data);
    uint64_t total = 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
        long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        total = v > 0 ? (uint64_t)v : 0;
    }
    ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    pf_buf_free(&sql);
    r = PQexec(conn, ok ? "RELEASE SAVEPOINT pf_estimate"
                        : "ROLLBACK TO SAVEPOINT pf_estimate; RELEASE SAVEPOINT pf_estimate");
    PQclear(r);
    return total;
}

static int in_dump_snapshot(PGconn *conn, void *ctx, pf_err *err)
{
    pf_mastodon_backup *m = ctx;
    if (pf_safety_in_snapshot(conn, &m->safety, err) < 0)
        return -1;
    if (m->run && m->run->estimate == 0 && (m->only & pf_component_bit(&pf_media_component))) {
        m->run->estimate = first_backup_estimate(conn);
        if (m->run->estimate)
            pf_info("a first backup: about %.1f MiB to read (the tables and the media files the "
                    "database records), the total of the progress line",
                    (double)m->run->estimate / (1 << 20));
    }
    return m->media_check ? pf_mediacheck_in_snapshot(conn, m->media_check, err) : 0;
}

int pf_mastodon_postgres_mode(const char *word, unsigned *mode, pf_err *err)
{
    if (!strcmp(word, "logical"))
        *mode = PF_POSTGRES_LOGICAL;
    else if (!strcmp(word, "physical"))
        *mode = PF_POSTGRES_PHYSICAL;
    else if (!strcmp(word, "both"))
        *mode = PF_POSTGRES_LOGICAL | PF_POSTGRES_PHYSICAL;
    else
        return pf_err_set(err, PF_EUSAGE,
                          "postgres = \"%s\": use logical (pg_dump), physical (a base backup, "
                          "with WAL archiving) or both",
                          word);
    return 0;
}

/* The components a mode leaves in: every one but the database form it does not take. */
static unsigned pg_mode_mask(unsigned mode)
{
    unsigned mask = pf_component_all();
    if (!(mode & PF_POSTGRES_PHYSICAL))
        mask &= ~pf_component_bit(&pf_pgphys_component);
    if (mode && !(mode & PF_POSTGRES_LOGICAL))
        mask &= ~pf_component_bit(&pf_postgres_component);
    return mask;
}

int pf_mastodon_backup_prepare(pf_mastodon_backup *m, const pf_mastodon_backup_opts *o, pf_err *err)
{
    memset(m, 0, sizeof *m);
    m->o = o;
    m->only = o->only ? o->only : pf_component_all();
    if (!o->only)
        m->only &= pg_mode_mask(o->postgres_mode);
    if (o->no_host && !o->only)
        m->only &= ~pf_component_bit(&pf_host_component);
    if (pf_mastodon_env_load(o->live, &m->env, err)) {
        if (err->code == PF_ENOTFOUND)
            snprintf(err->msg + strlen(err->msg), sizeof err->msg - strlen(err->msg),
                     " (--live DIR is Mastodon's live/ directory, the one holding "
                     ".env.production)");
        return pf_err_prefix(err, "backup");
    }
    const pf_mastodon_env *e = &m->env;
    snprintf(m->env_path, sizeof m->env_path, "%s/.env.production", o->live);
    pf_component_settings *s = &m->set;
    s->live = o->live;
    s->env_path = m->env_path;
    s->pg = (pf_pg_conn){e->db_host, e->db_port,    e->db_name, e->db_user,
                         e->db_pass, e->db_sslmode, NULL};
    s->redis = e->redis;
    /* The config file's settings win, so an operator can point the backup at a replica
     * or a different socket. */
    if (o->pg_host)
        s->pg.host = o->pg_host;
    if (o->pg_port)
        s->pg.port = o->pg_port;
    if (o->pg_user)
        s->pg.user = o->pg_user;
    if (o->pg_password) {
        s->pg.password = o->pg_password;
        s->pg_password_from = "pg_password of the config file";
    } else if (e->db_pass) {
        snprintf(m->pg_password_from, sizeof m->pg_password_from, "DB_PASS of %s", m->env_path);
        s->pg_password_from = m->pg_password_from;
    }
    if (o->redis_host)
        s->redis.host = (char *)o->redis_host;
    if (o->redis_port)
        s->redis.port = o->redis_port;
    if (o->redis_password)
        s->redis.password = (char *)o->redis_password;
    s->sidekiq = e->sidekiq_redis_separate ? &e->sidekiq_redis : NULL;
    s->media_root = e->paperclip_root;
    s->media_in_s3 = e->s3_enabled;
    s->exclude_cache = o->exclude_cache;
    /* Issue 16: media kept on S3, mirrored when asked. */
    if (o->media_from_s3 && e->s3_enabled && (m->only & pf_component_bit(&pf_media_component))) {
        if (!(m->media_bucket = pf_s3media_open(e, err)))
            return pf_err_prefix(err, "backup: media");
        pf_s3media_label(e, m->media_label, sizeof m->media_label);
        s->media_bucket = m->media_bucket;
        s->media_bucket_label = m->media_label;
    } else if (o->media_from_s3 && !e->s3_enabled) {
        pf_info("media: --media-from-s3 (media_from_s3): S3_ENABLED is not true in %s, so the "
                "media are on this disk and backed up from there",
                m->env_path);
    }
    s->pg_fresh_dump = o->fresh_dump;
    s->pg_dump_jobs = o->dump_jobs;
    /* Issue 16: the encryption keys and where they are; a pgbouncer the dump must bypass. */
    bool db = m->only & pf_component_bit(&pf_postgres_component);
    if (pf_safety_backup_prepare(&m->safety, &m->env, m->env_path, o->systemd_unit_path,
                                 o->pgbouncer_ini, o->pg_host, o->pg_port, db ? &s->pg : NULL, err))
        return pf_err_prefix(err, "backup");
    m->dump_opts = (pf_pg_dump_opts){.in_snapshot = in_dump_snapshot, .ctx = m};
    s->pg_dump = &m->dump_opts;
    s->secrets_extra = secrets_extra;
    s->secrets_extra_ctx = &m->safety;
    s->host_root = o->host_root;
    s->host_exclude = o->host_exclude;
    s->pg_physical_conninfo = o->pg_physical_conninfo;
    s->local_domain = e->local_domain;
    return 0;
}

/* ---- the component runner ------------------------------------------------------------
 * Components run in registry order. One marked ready_early (postgres) runs in a thread of
 * its own with a fork of the archiver, and the components after it start when it says it
 * is ready (its dump's snapshot exists): the dump and the media walk then overlap, and
 * the media are still read after the snapshot the dump shows (component.c says why that
 * order). The runner knows no component by name. */

typedef struct comp_job {
    const pf_component *c;
    pf_component_run run;
    cJSON *entry; /* describe's, once backup succeeded */
    int rc;
    pf_err err;
    /* a component in a thread of its own */
    pf_archiver *fork;
    pthread_t thread;
    bool threaded;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool ready, done;
} comp_job;

static void job_ready(pf_component_run *run)
{
    comp_job *j = run->ready_ctx;
    pthread_mutex_lock(&j->mu);
    j->ready = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void *job_thread(void *arg)
{
    comp_job *j = arg;
    j->rc = j->c->backup(&j->run, &j->err);
    pthread_mutex_lock(&j->mu);
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* Waits until j is ready (or done, when ready is false). */
static void job_wait(comp_job *j, bool until_done)
{
    pthread_mutex_lock(&j->mu);
    while (!j->done && (until_done || !j->ready))
        pthread_cond_wait(&j->cv, &j->mu);
    pthread_mutex_unlock(&j->mu);
}

/* Starts j in a thread with a fork of the archiver and returns when the components after
 * it may start. Falls back to running it here when no thread can be had. */
static void job_start(comp_job *j, pf_backup_run *b)
{
    pf_err e = {0};
    j->fork = pf_archiver_fork(b->arch, &e);
    if (j->fork) {
        j->run.arch = j->fork;
        j->run.root = pf_archiver_root(j->fork);
        j->run.ready = job_ready;
        j->run.ready_ctx = j;
        pthread_mutex_init(&j->mu, NULL);
        pthread_cond_init(&j->cv, NULL);
        if (pthread_create(&j->thread, NULL, job_thread, j) == 0) {
            j->threaded = true;
            job_wait(j, false);
            return;
        }
        pthread_mutex_destroy(&j->mu);
        pthread_cond_destroy(&j->cv);
        pf_archiver_free(j->fork);
        j->fork = NULL;
        j->run.arch = b->arch;
        j->run.root = pf_archiver_root(b->arch);
        j->run.ready = NULL;
    }
    j->rc = j->c->backup(&j->run, &j->err);
}

/* Waits for a threaded job and takes what its archiver holds into the main one. */
static void job_finish(comp_job *j, pf_backup_run *b)
{
    if (!j->threaded)
        return;
    job_wait(j, true);
    pthread_join(j->thread, NULL);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    j->threaded = false;
    pf_archiver_join(b->arch, j->fork);
    j->fork = NULL;
}

static int run_components(pf_mastodon_backup *m, pf_backup_run *b, pf_err *err)
{
    size_t n = pf_component_count();
    comp_job *jobs = calloc(n, sizeof *jobs);
    if (!jobs)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    char parent_id[2 * PF_ID_LEN + 1];
    snprintf(parent_id, sizeof parent_id, "%s", b->snap.parent);
    unsigned later = 0; /* selected components after i */
    for (size_t i = 0; i < n; i++)
        if (m->only & (1u << i))
            later |= 1u << i;
    comp_job *failed = NULL;
    for (size_t i = 0; i < n && !failed; i++) {
        comp_job *j = &jobs[i];
        j->c = pf_components[i];
        later &= ~(1u << i);
        if (!(m->only & (1u << i)))
            continue;
        j->run = (pf_component_run){
            .set = &m->set,
            .arch = b->arch,
            .root = pf_archiver_root(b->arch),
            .repo = b->repo,
            .parent = cJSON_GetObjectItemCaseSensitive(b->parent_components, j->c->name),
            .parent_id = parent_id[0] ? parent_id : NULL};
        if (j->c->ready_early && later)
            job_start(j, b);
        else
            j->rc = j->c->backup(&j->run, &j->err);
        bool gone = !j->threaded;
        if (j->threaded) { /* failed before it was ready: nothing after it may start */
            pthread_mutex_lock(&j->mu);
            gone = j->done;
            pthread_mutex_unlock(&j->mu);
        }
        if (gone && j->rc)
            failed = j;
    }
    for (size_t i = 0; i < n; i++) {
        job_finish(&jobs[i], b);
        if (jobs[i].c && jobs[i].rc && (!failed || failed > &jobs[i]))
            failed = &jobs[i];
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        comp_job *j = &jobs[i];
        if (j->c && (m->only & (1u << i)) && !failed) {
            cJSON *entry = cJSON_CreateObject();
            j->c->describe(&j->run, entry, b->snap.manifest);
            cJSON_AddItemToObject(b->snap.components, j->c->name, entry);
        }
    }
    if (failed) {
        /* What was uploaded stays indexed for the next run to reuse; no snapshot names
         * it. */
        pf_backup_abandon(b);
        *err = failed->err;
        pf_component_error(err, "backup", failed->c, &failed->run);
        if (err->code != PF_ECONN && err->code != PF_EAUTH && err->code != PF_ENOTFOUND &&
            err->code != PF_EUSAGE)
            err->code = PF_ECOMPONENT;
        m->component_failed = true;
        rc = -1;
    }
    for (size_t i = 0; i < n; i++)
        free(jobs[i].run.state);
    free(jobs);
    return rc;
}

int pf_mastodon_backup_run(pf_mastodon_backup *m, pf_repo *r, const pf_backup_opts *bo,
                           pf_backup_run *b, pf_err *err)
{
    m->run = b;
    const pf_mastodon_backup_opts *o = m->o;
    char *live = (char *)o->live;
    if (pf_backup_begin(b, r, bo, "mastodon", &live, 1, err))
        return -1;
    if (o->set_time) {
        b->snap.time_ns = o->time_ns;
        b->snap.tz_offset = o->tz_offset;
    }
    pf_snapshot_add_tag(&b->snap, "mastodon");
    /* The machine's files are an extra: a server backed up without them (host = no) is
     * still whole. */
    /* The database in either form (or both) makes it whole. */
    const unsigned db =
        pf_component_bit(&pf_postgres_component) | pf_component_bit(&pf_pgphys_component);
    unsigned whole = pf_component_all() & ~pf_component_bit(&pf_host_component) & ~db;
    b->snap.kind =
        (m->only & whole) == whole && (m->only & db) ? PF_SNAP_MASTODON : PF_SNAP_MASTODON_PARTIAL;
    for (size_t i = 0; i < o->ntags; i++)
        pf_snapshot_add_tag(&b->snap, o->tags[i]);
    b->snap.components = cJSON_CreateObject();
    b->snap.manifest = cJSON_CreateObject();
    char ver[64];
    pf_mastodon_version(o->live, ver, sizeof ver);
    if (ver[0])
        cJSON_AddStringToObject(b->snap.manifest, "mastodon", ver);
    if (m->env.local_domain)
        cJSON_AddStringToObject(b->snap.manifest, "domain", m->env.local_domain);

    unsigned both =
        pf_component_bit(&pf_postgres_component) | pf_component_bit(&pf_media_component);
    if ((m->only & both) == both && (!m->set.media_in_s3 || m->media_bucket)) {
        m->media_check = pf_mediacheck_new(m->set.exclude_cache);
        m->set.media_visit = pf_mediacheck_visit;
        m->set.media_visit_ctx = m->media_check;
    }

    if (run_components(m, b, err))
        return -1;
    if (m->media_check) {
        pf_mediacheck_seal(m->media_check); /* the media walk did, unless it stored none */
        pf_mediacheck_result(m->media_check, &b->snap.media_check);
        if (b->snap.media_check.missing) {
            b->snap.complete = false;
            cJSON *media =
                cJSON_GetObjectItemCaseSensitive(b->snap.components, pf_media_component.name);
            if (media)
                cJSON_ReplaceItemInObjectCaseSensitive(media, "status",
                                                       cJSON_CreateString("incomplete"));
        }
    }
    /* Keys missing or not decrypting: the snapshot is kept, but incomplete (exit 3). */
    if (pf_safety_backup_describe(&m->safety, &m->env, b->snap.manifest))
        pf_snapshot_add_skipped(&b->snap, PF_LAYOUT_SECRETS
                                "/" PF_AR_KEYS_FILE
                                " (ACTIVE_RECORD_ENCRYPTION_* keys that decrypt the "
                                "database)");
    return 0;
}

void pf_mastodon_backup_free(pf_mastodon_backup *m)
{
    pf_mediacheck_free(m->media_check);
    m->media_check = NULL;
    if (m->media_bucket)
        pf_store_free(m->media_bucket);
    m->media_bucket = NULL;
    pf_safety_free(&m->safety);
    pf_mastodon_env_free(&m->env);
}

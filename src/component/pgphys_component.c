/* postgres-physical: the database as a physical base backup (pgphys.h), beside or instead
 * of the logical dump (config `postgres = logical | physical | both`). Its backup is the
 * base backup plus a bounded wait for the last WAL file it needs; its restore is a
 * point-in-time recovery into a stopped or absent cluster, so it runs only when the
 * orchestration asks for one (settings' pgphys). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"
#include "component/component.h"
#include "repo/restorer.h"
#include "repo/wal.h"

static double wal_wait_seconds(void)
{
    const char *v = getenv("PERMAFROST_WAL_WAIT");
    return v && *v ? atof(v) : 60;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits (bounded) for WAL file name to be archived: until it is, the base backup cannot
 * become consistent. */
static bool wait_for_wal(pf_repo *r, const char *name)
{
    char key[PF_WAL_KEY_MAX];
    pf_err e = {0};
    if (!r || pf_wal_key(name, key, &e))
        return false;
    double until = mono() + wal_wait_seconds();
    for (;;) {
        uint64_t size;
        if (pf_store_stat(r->store, key, &size, &e) == 0)
            return true;
        if (mono() >= until)
            return false;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

typedef struct phys_state {
    cJSON *comp; /* what pf_pgphys_backup recorded */
    pf_pgphys_restored restored;
} phys_state;

/* A libpq conninfo word: quoted, with \ and ' escaped. */
static void conninfo_word(pf_buf *b, const char *key, const char *val)
{
    if (!val || !*val)
        return;
    pf_buf_printf(b, "%s%s='", b->len ? " " : "", key);
    for (; *val; val++) {
        if (*val == '\'' || *val == '\\')
            pf_buf_append(b, "\\", 1);
        pf_buf_append(b, val, 1);
    }
    pf_buf_append(b, "'", 1);
}

static int phys_backup(pf_component_run *run, pf_err *err)
{
    const pf_component_settings *s = run->set;
    pf_buf ci = PF_BUF_INIT;
    if (s->pg_physical_conninfo) {
        pf_buf_append_str(&ci, s->pg_physical_conninfo);
    } else {
        char port[16];
        snprintf(port, sizeof port, "%d", s->pg.port ? s->pg.port : 5432);
        conninfo_word(&ci, "host", s->pg.host);
        conninfo_word(&ci, "port", port);
        conninfo_word(&ci, "user", s->pg.user);
        conninfo_word(&ci, "password", s->pg.password);
    }
    pf_buf_append(&ci, "", 1);
    phys_state *st = calloc(1, sizeof *st);
    if (!st) {
        pf_buf_free(&ci);
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    }
    run->state = st;
    st->comp = cJSON_CreateObject();
    pf_info("postgres-physical: base backup through the replication protocol");
    int rc = pf_pgphys_backup(run->arch, run->root, (const char *)ci.data, st->comp, err);
    pf_buf_free(&ci);
    if (rc) {
        size_t len = strlen(err->msg);
        if (strstr(err->msg, "replication") && !s->pg_physical_conninfo)
            snprintf(err->msg + len, sizeof err->msg - len,
                     " (the role needs REPLICATION: name one with pg_physical_conninfo in the "
                     "config)");
        cJSON_Delete(st->comp);
        st->comp = NULL;
        return -1;
    }
    const char *end_wal = cJSON_GetObjectItem(st->comp, "end_wal")->valuestring;
    bool archived = wait_for_wal(run->repo, end_wal);
    cJSON_AddBoolToObject(st->comp, "wal_archived", archived);
    if (!archived)
        pf_warn("postgres-physical: WAL file %s, which this base backup needs, did not reach "
                "the repository within %.0f s: check the server's archive_command (permafrost "
                "wal-push %%p); the base backup cannot be restored until it arrives",
                end_wal, wal_wait_seconds());
    return 0;
}

static void phys_describe(pf_component_run *run, cJSON *entry, cJSON *manifest)
{
    (void)manifest;
    phys_state *st = run->state;
    if (!st || !st->comp)
        return;
    while (st->comp->child) {
        cJSON *item = st->comp->child;
        char *name = strdup(item->string);
        cJSON_DetachItemViaPointer(st->comp, item);
        cJSON_AddItemToObject(entry, name, item);
        free(name);
    }
    cJSON_Delete(st->comp);
    st->comp = NULL;
}

static int phys_restore_check(pf_component_run *run, pf_err *err)
{
    const pf_component_settings *s = run->set;
    if (!s->pgphys || !s->pgphys_snap)
        return pf_err_set(err, PF_EUSAGE,
                          "a base backup is restored only by a point-in-time restore (--to)");
    if (pf_lookup_path(run->repo, s->pgphys_snap->tree, PF_PGPHYS_DIR "/base", &run->node[0], err))
        return pf_err_prefix(err, "snapshot %.8s", s->pgphys_snap->id);
    return pf_pgphys_restore_check(s->pgphys, err);
}

static int phys_restore(pf_component_run *run, pf_err *err)
{
    const pf_component_settings *s = run->set;
    phys_state *st = calloc(1, sizeof *st);
    if (!st)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    run->state = st;
    pf_info("postgres-physical: base backup %.8s into %s, then recovery from the WAL archive",
            s->pgphys_snap->id, s->pgphys->target);
    return pf_pgphys_restore(run->repo, s->pgphys_snap, s->pgphys, &st->restored, err);
}

const pf_pgphys_restored *pf_pgphys_component_result(const pf_component_run *run)
{
    const phys_state *st = run->state;
    return st ? &st->restored : NULL;
}

static const char *const aliases[] = {"physical", NULL};

const pf_component pf_pgphys_component = {.name = PF_PGPHYS_DIR,
                                          .aliases = aliases,
                                          .backup = phys_backup,
                                          .describe = phys_describe,
                                          .restore_check = phys_restore_check,
                                          .restore = phys_restore,
                                          .verify = NULL};

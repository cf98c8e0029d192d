#include "repo/runs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "repo/names.h"
#include "store/store.h"

char *pf_run_encode(const pf_run_record *rec)
{
    cJSON *o = cJSON_CreateObject();
    char ns[32];
    snprintf(ns, sizeof ns, "%lld", (long long)rec->time_ns);
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddStringToObject(o, "command", rec->command);
    cJSON_AddStringToObject(o, "host", rec->host ? rec->host : "");
    cJSON_AddStringToObject(o, "time_ns", ns);
    /* Milliseconds are all a duration needs, and keep the JSON free of float noise. */
    cJSON_AddNumberToObject(o, "seconds", (double)(int64_t)(rec->seconds * 1000 + 0.5) / 1000);
    cJSON_AddNumberToObject(o, "exit_code", rec->exit_code);
    cJSON_AddStringToObject(o, "result", rec->result ? rec->result : "");
    if (rec->snapshot)
        cJSON_AddStringToObject(o, "snapshot", rec->snapshot);
    if (rec->detail)
        cJSON_AddItemToObject(o, "detail", cJSON_Duplicate(rec->detail, 1));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        abort();
    return text;
}

static int take_string(cJSON *o, const char *field, bool required, char **out, pf_err *err)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!v)
        return required ? pf_err_set(err, PF_ECORRUPT, "run record: no %s", field) : 0;
    if (!cJSON_IsString(v) || strlen(v->valuestring) > PF_RUN_STR_MAX)
        return pf_err_set(err, PF_ECORRUPT, "run record: %s is not a string of at most %d bytes",
                          field, PF_RUN_STR_MAX);
    *out = strdup(v->valuestring);
    if (!*out)
        abort();
    return 0;
}

int pf_run_decode(const char *json, size_t n, pf_run_record *rec, pf_err *err)
{
    memset(rec, 0, sizeof *rec);
    cJSON *o = cJSON_ParseWithLength(json, n);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return pf_err_set(err, PF_ECORRUPT, "run record: not a JSON object");
    }
    int rc = -1;
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "version");
    if (!cJSON_IsNumber(v) || v->valuedouble != 1) {
        pf_err_set(err, PF_ECORRUPT, "run record: version is not 1");
        goto out;
    }
    char *ns = NULL;
    if (take_string(o, "command", true, &rec->command, err) ||
        take_string(o, "host", true, &rec->host, err) ||
        take_string(o, "result", false, &rec->result, err) ||
        take_string(o, "snapshot", false, &rec->snapshot, err) ||
        take_string(o, "time_ns", true, &ns, err))
        goto out;
    char *end;
    long long t = strtoll(ns, &end, 10);
    bool bad_time = *ns == '\0' || *end != '\0';
    free(ns);
    if (bad_time) {
        pf_err_set(err, PF_ECORRUPT, "run record: time_ns is not a decimal number");
        goto out;
    }
    rec->time_ns = t;
    if (rec->snapshot && !pf_name_is_id(rec->snapshot)) {
        pf_err_set(err, PF_ECORRUPT, "run record: snapshot is not a snapshot id");
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "seconds");
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e9)
        rec->seconds = v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(o, "exit_code");
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 255) {
        pf_err_set(err, PF_ECORRUPT, "run record: exit_code is not a number from 0 to 255");
        goto out;
    }
    rec->exit_code = (int)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(o, "detail");
    if (cJSON_IsObject(v))
        rec->detail = cJSON_Duplicate(v, 1);
    rc = 0;
out:
    cJSON_Delete(o);
    if (rc)
        pf_run_record_free(rec);
    return rc;
}

void pf_run_record_free(pf_run_record *rec)
{
    free(rec->command);
    free(rec->host);
    free(rec->result);
    free(rec->snapshot);
    cJSON_Delete(rec->detail);
    memset(rec, 0, sizeof *rec);
}

int pf_run_save(pf_repo *r, pf_run_record *rec, pf_err *err)
{
    char *text = pf_run_encode(rec);
    int rc = pf_repo_save_object(r, "runs", text, strlen(text), rec->id, err);
    free(text);
    return rc;
}

typedef struct load_ctx {
    pf_repo *r;
    pf_run_record *v;
    size_t n, cap, over; /* over: records not read past PF_RUNS_LOAD_MAX */
    pf_err *err;
} load_ctx;

static int load_one(const char *id, void *arg)
{
    load_ctx *c = arg;
    if (c->n >= PF_RUNS_LOAD_MAX) {
        c->over++;
        return 0;
    }
    pf_buf b = PF_BUF_INIT;
    pf_err e = {0};
    pf_run_record rec;
    if (pf_repo_load_object(c->r, "runs", id, &b, &e) ||
        pf_run_decode((const char *)b.data, b.len, &rec, &e)) {
        pf_buf_free(&b);
        if (e.code == PF_EIO || e.code == PF_ECONN) {
            *c->err = e;
            return -1;
        }
        pf_warn("runs/%s: %s (skipped)", id, e.msg);
        return 0;
    }
    pf_buf_free(&b);
    snprintf(rec.id, sizeof rec.id, "%s", id);
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->v = realloc(c->v, c->cap * sizeof *c->v);
        if (!c->v)
            abort();
    }
    c->v[c->n++] = rec;
    return 0;
}

static int newest_first(const void *a, const void *b)
{
    const pf_run_record *x = a, *y = b;
    if (x->time_ns != y->time_ns)
        return x->time_ns < y->time_ns ? 1 : -1;
    return strcmp(x->id, y->id);
}

int pf_runs_load(pf_repo *r, pf_run_record **out, size_t *n, pf_err *err)
{
    load_ctx c = {.r = r, .err = err};
    if (pf_repo_list_objects(r, "runs", load_one, &c, err)) {
        pf_runs_free(c.v, c.n);
        return -1;
    }
    if (c.over)
        pf_warn("runs/: %zu run records beyond the first %d were not read (prune trims them)",
                c.over, PF_RUNS_LOAD_MAX);
    if (c.n)
        qsort(c.v, c.n, sizeof *c.v, newest_first);
    *out = c.v;
    *n = c.n;
    return 0;
}

void pf_runs_free(pf_run_record *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pf_run_record_free(&v[i]);
    free(v);
}

const pf_run_record *pf_runs_newest(const pf_run_record *v, size_t n, const char *host,
                                    const char *command)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].command, command) && (!host || !strcmp(v[i].host, host)))
            return &v[i];
    return NULL;
}

int pf_runs_trim(pf_repo *r, size_t keep, size_t *removed, pf_err *err)
{
    pf_run_record *v;
    size_t n;
    *removed = 0;
    if (pf_runs_load(r, &v, &n, err))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        /* Newer records of the same host and command come first in v. */
        size_t newer = 0;
        for (size_t j = 0; j < i; j++)
            newer += !strcmp(v[j].command, v[i].command) && !strcmp(v[j].host, v[i].host);
        if (newer < keep)
            continue;
        char key[128];
        snprintf(key, sizeof key, "runs/%s", v[i].id);
        if (pf_store_remove(r->store, key, err) < 0) {
            pf_err_prefix(err, "removing %s", key);
            rc = -1;
        } else {
            (*removed)++;
        }
    }
    pf_runs_free(v, n);
    return rc;
}

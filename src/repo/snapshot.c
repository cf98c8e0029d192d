#include "repo/snapshot.h"
#include "common/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repo/names.h"

static void push(char ***arr, size_t *n, const char *s)
{
    char **a = realloc(*arr, (*n + 1) * sizeof *a);
    if (!a) {
        fprintf(stderr, "permafrost: out of memory\n");
        abort();
    }
    a[(*n)++] = pf_xstrdup(s);
    *arr = a;
}

void pf_snapshot_init(pf_snapshot *s)
{
    memset(s, 0, sizeof *s);
    s->complete = true;
}

void pf_snapshot_free(pf_snapshot *s)
{
    free(s->host);
    free(s->user);
    free(s->program);
    for (size_t i = 0; i < s->ntags; i++)
        free(s->tags[i]);
    free(s->tags);
    for (size_t i = 0; i < s->npaths; i++)
        free(s->paths[i]);
    free(s->paths);
    cJSON_Delete(s->components);
    cJSON_Delete(s->manifest);
    cJSON_Delete(s->stats);
    for (size_t i = 0; i < s->nskipped; i++)
        free(s->skipped[i]);
    free(s->skipped);
    memset(s, 0, sizeof *s);
}

void pf_snapshot_add_tag(pf_snapshot *s, const char *tag)
{
    if (!pf_snapshot_has_tag(s, tag))
        push(&s->tags, &s->ntags, tag);
}

void pf_snapshot_add_path(pf_snapshot *s, const char *path)
{
    push(&s->paths, &s->npaths, path);
}

void pf_snapshot_add_skipped(pf_snapshot *s, const char *path)
{
    s->complete = false;
    s->skipped_count++;
    if (s->nskipped < PF_SNAPSHOT_SKIPPED_MAX)
        push(&s->skipped, &s->nskipped, path);
}

static const char *const kind_names[] = {"unknown", "paths", "mastodon", "mastodon-partial",
                                          "pg-physical"};

const char *pf_snapshot_kind_name(pf_snapshot_kind k)
{
    return (unsigned)k < sizeof kind_names / sizeof *kind_names ? kind_names[k] : "unknown";
}

pf_snapshot_kind pf_snapshot_kind_parse(const char *name)
{
    for (size_t i = 1; name && i < sizeof kind_names / sizeof *kind_names; i++)
        if (!strcmp(name, kind_names[i]))
            return (pf_snapshot_kind)i;
    return PF_SNAP_UNKNOWN;
}

int pf_snapshot_has_tag(const pf_snapshot *s, const char *tag)
{
    for (size_t i = 0; i < s->ntags; i++)
        if (!strcmp(s->tags[i], tag))
            return 1;
    return 0;
}

void pf_snapshot_time_str(const pf_snapshot *s, char *out, size_t n)
{
    time_t t = (time_t)(s->time_ns / 1000000000) + s->tz_offset;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
}

void pf_snapshot_time_local(const pf_snapshot *s, char *out, size_t n)
{
    time_t t = (time_t)(s->time_ns / 1000000000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S %z", &tm);
}

int pf_parse_local_time(const char *str, int64_t *time_ns, int32_t *tz_offset, pf_err *err)
{
    struct tm tm = {0};
    const char *end = strptime(str, "%Y-%m-%d %H:%M:%S", &tm);
    if (!end || *end)
        return pf_err_set(err, PF_EUSAGE, "time \"%s\" is not in the form \"YYYY-MM-DD HH:MM:SS\"",
                          str);
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    if (t == (time_t)-1)
        return pf_err_set(err, PF_EUSAGE, "time \"%s\" does not exist here", str);
    *time_ns = (int64_t)t * 1000000000;
    *tz_offset = (int32_t)tm.tm_gmtoff;
    return 0;
}

static cJSON *str_array(char **a, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(a[i]));
    return arr;
}

/* What the stored and the shown JSON of a snapshot carry alike, in the order both use:
 * first what it holds, */
static void add_contents(cJSON *o, const pf_snapshot *s)
{
    char hex[2 * PF_ID_LEN + 1];
    cJSON_AddItemToObject(o, "tags", str_array(s->tags, s->ntags));
    cJSON_AddItemToObject(o, "paths", str_array(s->paths, s->npaths));
    pf_hex(s->tree, PF_ID_LEN, hex);
    cJSON_AddStringToObject(o, "tree", hex);
    if (s->parent[0])
        cJSON_AddStringToObject(o, "parent", s->parent);
}

/* then the documents the backup wrote about itself (copies). */
static void add_documents(cJSON *o, const pf_snapshot *s)
{
    if (s->components)
        cJSON_AddItemToObject(o, "components", cJSON_Duplicate(s->components, 1));
    if (s->manifest)
        cJSON_AddItemToObject(o, "manifest", cJSON_Duplicate(s->manifest, 1));
    if (s->stats)
        cJSON_AddItemToObject(o, "stats", cJSON_Duplicate(s->stats, 1));
}

cJSON *pf_snapshot_to_json(const pf_snapshot *s)
{
    cJSON *o = cJSON_CreateObject();
    char t[64];
    cJSON_AddStringToObject(o, "id", s->id);
    pf_snapshot_time_str(s, t, sizeof t);
    cJSON_AddStringToObject(o, "time", t);
    cJSON_AddNumberToObject(o, "tz_offset", s->tz_offset);
    pf_snapshot_time_local(s, t, sizeof t);
    cJSON_AddStringToObject(o, "time_local", t);
    cJSON_AddStringToObject(o, "kind", pf_snapshot_kind_name(s->kind));
    if (s->kind_inferred)
        cJSON_AddBoolToObject(o, "kind_inferred", true);
    cJSON_AddBoolToObject(o, "complete", s->complete);
    if (!s->complete) {
        cJSON_AddItemToObject(o, "skipped", str_array(s->skipped, s->nskipped));
        cJSON_AddNumberToObject(o, "skipped_count", (double)s->skipped_count);
    }
    cJSON_AddStringToObject(o, "host", s->host);
    cJSON_AddStringToObject(o, "user", s->user);
    add_contents(o, s);
    add_documents(o, s);
    return o;
}

char *pf_snapshot_encode(const pf_snapshot *s)
{
    cJSON *o = cJSON_CreateObject();
    char tbuf[64];
    cJSON_AddNumberToObject(o, "version", 1);
    pf_snapshot_time_str(s, tbuf, sizeof tbuf);
    cJSON_AddStringToObject(o, "time", tbuf);
    /* Nanoseconds do not fit a JSON double exactly: keep them as a decimal string. */
    char ns[32];
    snprintf(ns, sizeof ns, "%lld", (long long)s->time_ns);
    cJSON_AddStringToObject(o, "time_ns", ns);
    cJSON_AddNumberToObject(o, "tz_offset", s->tz_offset);
    cJSON_AddStringToObject(o, "host", s->host ? s->host : "");
    cJSON_AddStringToObject(o, "user", s->user ? s->user : "");
    add_contents(o, s);
    cJSON_AddStringToObject(o, "program", s->program ? s->program : "");
    add_documents(o, s);
    /* Always written, "unknown" too: read back, it must not be inferred anew. */
    cJSON_AddStringToObject(o, "kind", pf_snapshot_kind_name(s->kind));
    cJSON_AddBoolToObject(o, "complete", s->complete);
    if (!s->complete || s->skipped_count || s->nskipped) {
        cJSON_AddItemToObject(o, "skipped", str_array(s->skipped, s->nskipped));
        cJSON_AddNumberToObject(o, "skipped_count", (double)s->skipped_count);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static int get_strs(cJSON *o, const char *key, char ***arr, size_t *n)
{
    cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!a)
        return 0;
    if (!cJSON_IsArray(a))
        return -1;
    cJSON *it;
    cJSON_ArrayForEach(it, a)
    {
        if (!cJSON_IsString(it))
            return -1;
        push(arr, n, it->valuestring);
    }
    return 0;
}

static const char *get_str(cJSON *o, const char *key)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static cJSON *take_obj(cJSON *o, const char *key)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsObject(v) ? cJSON_Duplicate(v, 1) : NULL;
}

/* The largest skipped_count read or inferred: exact in a double, and the same bound on both
 * paths, so what an old snapshot's stats imply is written back as a count that reads. */
#define SKIPPED_MAX 999999999999999.0

/* Snapshots written before "kind" and "complete" existed: a Mastodon backup always
 * recorded its components (all four unless --only left some out); plain backups never
 * did. Completeness follows from the error count in stats. */
static void infer_truth(cJSON *o, pf_snapshot *s)
{
    static const char *const whole[] = {"secrets", "postgres", "redis", "media"};
    cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    cJSON *comp = s->components;
    if (!kind) {
        s->kind_inferred = true;
        if (comp) {
            s->kind = PF_SNAP_MASTODON;
            for (size_t i = 0; i < sizeof whole / sizeof *whole; i++)
                if (!cJSON_GetObjectItemCaseSensitive(comp, whole[i]))
                    s->kind = PF_SNAP_MASTODON_PARTIAL;
        } else if (pf_snapshot_has_tag(s, "mastodon")) {
            s->kind = PF_SNAP_UNKNOWN;
        } else {
            s->kind = PF_SNAP_PATHS;
        }
    }
    if (!cJSON_GetObjectItemCaseSensitive(o, "complete")) {
        cJSON *e = s->stats ? cJSON_GetObjectItemCaseSensitive(s->stats, "errors") : NULL;
        s->complete = !(cJSON_IsNumber(e) && e->valuedouble > 0);
        if (!s->complete) /* converting an out-of-range double is undefined */
            s->skipped_count =
                e->valuedouble < SKIPPED_MAX ? (uint64_t)e->valuedouble : (uint64_t)SKIPPED_MAX;
    }
}

static int decode_truth(cJSON *o, pf_snapshot *s)
{
    cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    cJSON *complete = cJSON_GetObjectItemCaseSensitive(o, "complete");
    cJSON *count = cJSON_GetObjectItemCaseSensitive(o, "skipped_count");
    if (kind && !cJSON_IsString(kind))
        return -1;
    /* A kind from a newer version stays "unknown": no `latest` picks it by mistake. */
    s->kind = kind ? pf_snapshot_kind_parse(kind->valuestring) : PF_SNAP_UNKNOWN;
    if (complete && !cJSON_IsBool(complete))
        return -1;
    s->complete = complete ? cJSON_IsTrue(complete) : true;
    if (get_strs(o, "skipped", &s->skipped, &s->nskipped))
        return -1;
    if (count &&
        (!cJSON_IsNumber(count) || !(count->valuedouble >= 0 && count->valuedouble <= SKIPPED_MAX)))
        return -1;
    s->skipped_count = count ? (uint64_t)count->valuedouble : s->nskipped;
    infer_truth(o, s);
    return 0;
}

int pf_snapshot_decode(const char *json, size_t n, pf_snapshot *s, pf_err *err)
{
    pf_snapshot_init(s);
    cJSON *o = cJSON_ParseWithLength(json, n);
    const char *tree, *ns, *parent;
    cJSON *ver, *tz;
    if (!o || !cJSON_IsObject(o))
        goto bad;
    ver = cJSON_GetObjectItemCaseSensitive(o, "version");
    tz = cJSON_GetObjectItemCaseSensitive(o, "tz_offset");
    tree = get_str(o, "tree");
    ns = get_str(o, "time_ns");
    if (!cJSON_IsNumber(ver) || ver->valuedouble != 1 || !tree || !ns ||
        pf_unhex(tree, s->tree, PF_ID_LEN))
        goto bad;
    char *end;
    s->time_ns = strtoll(ns, &end, 10);
    if (end == ns || *end)
        goto bad;
    /* Converting an out-of-range double is undefined: a zone is within a day of UTC. */
    if (tz && (!cJSON_IsNumber(tz) || !(tz->valuedouble >= -86400 && tz->valuedouble <= 86400)))
        goto bad;
    s->tz_offset = tz ? (int32_t)tz->valuedouble : 0;
    s->host = pf_xstrdup(get_str(o, "host"));
    s->user = pf_xstrdup(get_str(o, "user"));
    s->program = pf_xstrdup(get_str(o, "program"));
    parent = get_str(o, "parent");
    if (parent) {
        if (!pf_name_is_id(parent)) /* it is looked up among the snapshots' names */
            goto bad;
        memcpy(s->parent, parent, sizeof s->parent);
    }
    if (get_strs(o, "tags", &s->tags, &s->ntags) || get_strs(o, "paths", &s->paths, &s->npaths))
        goto bad;
    s->components = take_obj(o, "components");
    s->manifest = take_obj(o, "manifest");
    s->stats = take_obj(o, "stats");
    if (decode_truth(o, s))
        goto bad;
    cJSON_Delete(o);
    return 0;
bad:
    cJSON_Delete(o);
    pf_snapshot_free(s);
    return pf_err_set(err, PF_ECORRUPT, "snapshot malformed");
}

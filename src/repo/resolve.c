#include "repo/resolve.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"

#include <cjson/cJSON.h>

static const char *const server_dirs[] = {"secrets", "postgres", "redis", "media"};

/* Length of p's first component, p without leading slashes. */
static size_t first_component(const char **p)
{
    while (**p == '/')
        (*p)++;
    return strcspn(*p, "/");
}

pf_snapshot_want pf_snapshot_want_for(const char *const *inside, size_t n)
{
    pf_snapshot_want w = {.kind = PF_SNAP_UNKNOWN, .inside = inside, .ninside = n};
    if (n == 0)
        return w;
    const char *p = inside[0];
    size_t len = first_component(&p);
    for (size_t i = 0; i < sizeof server_dirs / sizeof *server_dirs; i++)
        if (len == strlen(server_dirs[i]) && !strncmp(p, server_dirs[i], len)) {
            w.kind = PF_SNAP_MASTODON;
            w.complete = true;
            w.inside = NULL;
            w.ninside = 0;
            return w;
        }
    if (len == strlen("postgres-physical") && !strncmp(p, "postgres-physical", len)) {
        w.kind = PF_SNAP_PG_PHYSICAL; /* a base backup (backup --pg-physical) */
        w.inside = NULL;
        w.ninside = 0;
        return w;
    }
    if (len == 0) { /* "/" or "": the whole snapshot */
        w.inside = NULL;
        w.ninside = 0;
        return w;
    }
    w.kind = PF_SNAP_PATHS;
    return w;
}

/* The name a plain backup stored path under (cmd/backup.c): its base name, "root" for /. */
static size_t stored_name(const char *path, const char **name)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/')
        start--;
    if (start == len) {
        *name = "root";
        return 4;
    }
    *name = path + start;
    return len - start;
}

bool pf_snapshot_holds(const pf_snapshot *s, const char *p)
{
    size_t len = first_component(&p);
    if (len == 0)
        return true;
    for (size_t i = 0; i < s->npaths; i++) {
        const char *name;
        size_t n = stored_name(s->paths[i], &name);
        if (n == len && !strncmp(name, p, len))
            return true;
    }
    return false;
}

/* Why s cannot stand for "latest" under want, or NULL when it can. */
static const char *unfit(const pf_snapshot *s, const pf_snapshot_want *w)
{
    /* A partial --only snapshot stands for the components asked for, if it has them all. */
    bool part_fits =
        w->kind == PF_SNAP_MASTODON && w->ncomponents && s->kind == PF_SNAP_MASTODON_PARTIAL;
    if (w->kind != PF_SNAP_UNKNOWN && s->kind != w->kind && !part_fits)
        return pf_snapshot_kind_name(s->kind);
    for (size_t i = 0; i < w->ncomponents; i++)
        if (!s->components || !cJSON_GetObjectItemCaseSensitive(s->components, w->components[i]))
            return part_fits ? pf_snapshot_kind_name(s->kind) : "without the components asked for";
    if (w->complete && !s->complete)
        return "incomplete";
    for (size_t i = 0; i < w->ninside; i++)
        if (!pf_snapshot_holds(s, w->inside[i]))
            return "other paths";
    return NULL;
}

static void describe(const pf_snapshot_want *w, char *out, size_t n)
{
    if (w->kind == PF_SNAP_MASTODON && w->ncomponents)
        snprintf(out, n, "the newest %sMastodon snapshot holding %s%s%s%s",
                 w->complete ? "complete " : "", w->components[0],
                 w->ncomponents > 1 ? " and " : "", w->ncomponents > 1 ? w->components[1] : "",
                 w->ncomponents > 2 ? ", ..." : "");
    else if (w->kind == PF_SNAP_MASTODON)
        snprintf(out, n, "the newest %swhole-server Mastodon snapshot",
                 w->complete ? "complete " : "");
    else if (w->kind == PF_SNAP_PATHS && w->ninside)
        snprintf(out, n, "the newest plain backup holding %s%s", w->inside[0],
                 w->ninside > 1 ? ", ..." : "");
    else if (w->kind == PF_SNAP_PATHS)
        snprintf(out, n, "the newest plain backup");
    else if (w->kind == PF_SNAP_PG_PHYSICAL)
        snprintf(out, n, "the newest physical base backup");
    else
        snprintf(out, n, "the newest snapshot");
}

int pf_snapshot_resolve(pf_repo *r, const char *ref, const pf_snapshot_want *want, pf_snapshot *s,
                        pf_err *err)
{
    if (strcmp(ref, "latest"))
        return pf_repo_load_snapshot(r, ref, s, err);
    pf_snapshot_want any = {.kind = PF_SNAP_UNKNOWN};
    const pf_snapshot_want *w = want ? want : &any;
    pf_snapshot *all;
    size_t n;
    if (pf_repo_load_all_snapshots(r, &all, &n, err))
        return -1;
    char what[512], passed[512] = "";
    describe(w, what, sizeof what);
    size_t npassed = 0, plen = 0;
    for (size_t i = n; i-- > 0;) {
        const char *why = unfit(&all[i], w);
        if (!why) {
            char t[64];
            pf_snapshot_time_local(&all[i], t, sizeof t);
            pf_info("latest: snapshot %.8s of %s, %s%s%s%s", all[i].id, t, what,
                    npassed ? " (passed over " : "", passed, npassed ? ")" : "");
            *s = all[i];
            /* The chosen one moves out of the array; the rest is freed. */
            all[i] = all[n - 1];
            pf_snapshots_free(all, n - 1);
            return 0;
        }
        if (npassed < 3 && plen < sizeof passed - 64)
            plen += (size_t)snprintf(passed + plen, sizeof passed - plen, "%s%.8s: %s",
                                     npassed ? ", " : "", all[i].id, why);
        else if (npassed == 3 && plen < sizeof passed - 8)
            plen += (size_t)snprintf(passed + plen, sizeof passed - plen, ", ...");
        npassed++;
    }
    pf_snapshots_free(all, n);
    if (n == 0)
        return pf_err_set(err, PF_ENOTFOUND, "the repository has no snapshots yet");
    return pf_err_set(err, PF_ENOTFOUND,
                      "\"latest\" means %s, and none of the %zu snapshots is one (%s): give a "
                      "snapshot id (see 'permafrost snapshots')",
                      what, n, passed);
}

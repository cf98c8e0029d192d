/* The host component: what Mastodon's backup guide says to keep besides the server's own
 * data, and what a new machine needs to run the way the old one did: /etc/letsencrypt
 * whole, the nginx sites that name LOCAL_DOMAIN (and their sites-enabled links), the
 * mastodon-*.service units with their drop-ins, and the mastodon user's crontab.
 *
 * They are read under the host root (host_root, "/" unless a test says otherwise) and
 * kept at the same paths below host/ (component/layout.h). Restore writes them back only
 * when asked (--only host, --host-files): they belong to the machine, not to Mastodon,
 * and a restore onto a staging machine must not take over the old one's certificates or
 * crontab. It prints every path it would write first, and refuses to replace one that
 * differs without --force. */
#include "component/host.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "component/component.h"
#include "component/layout.h"
#include "repo/restorer.h"

/* An nginx site is a few kilobytes; a bigger file under sites-available is not one. */
#define HOST_SITE_MAX (1u << 20)

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

bool pf_host_nginx_names_domain(const char *text, size_t n, const char *domain)
{
    size_t dl = domain ? strlen(domain) : 0;
    if (!dl)
        return false;
    bool comment = false;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (c == '\n') {
            comment = false;
            continue;
        }
        if (comment)
            continue;
        if (c == '#') {
            comment = true;
            continue;
        }
        if (i + dl > n || strncasecmp(text + i, domain, dl))
            continue;
        bool starts = i == 0 || !host_char(text[i - 1]);
        /* "example.com." is the same name, fully qualified */
        size_t e = i + dl;
        if (e < n && text[e] == '.' && (e + 1 >= n || !host_char(text[e + 1])))
            e++;
        bool ends = e >= n || !host_char(text[e]);
        if (starts && ends)
            return true;
    }
    return false;
}

bool pf_host_unit_name(const char *name, bool *dropin)
{
    static const char pre[] = "mastodon-", unit[] = ".service", drop[] = ".service.d";
    size_t n = strlen(name), pl = sizeof pre - 1;
    if (n <= pl || strncmp(name, pre, pl) || strchr(name, '/'))
        return false;
    size_t ul = sizeof unit - 1, dl = sizeof drop - 1;
    if (n > pl + ul && !strcmp(name + n - ul, unit)) {
        *dropin = false;
        return true;
    }
    if (n > pl + dl && !strcmp(name + n - dl, drop)) {
        *dropin = true;
        return true;
    }
    return false;
}

bool pf_host_excluded(const char *list, const char *abs)
{
    if (!list)
        return false;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *g = strtok_r(buf, " \t,", &save); g; g = strtok_r(NULL, " \t,", &save))
        if (!fnmatch(g, abs, 0))
            return true;
    return false;
}

/* The directories on the way to what is kept: written by nobody, only walked through. */
static const char *const containers[] = {"etc",
                                         "etc/nginx",
                                         PF_LAYOUT_HOST_NGINX_AVAILABLE,
                                         PF_LAYOUT_HOST_NGINX_ENABLED,
                                         "etc/systemd",
                                         PF_LAYOUT_HOST_SYSTEMD,
                                         "var",
                                         "var/spool",
                                         "var/spool/cron",
                                         PF_LAYOUT_HOST_CRONTABS,
                                         NULL};

/* The name after dir + "/" in rel when it is a single entry name, else NULL. */
static const char *child_of(const char *rel, const char *dir)
{
    size_t dl = strlen(dir);
    if (strncmp(rel, dir, dl) || rel[dl] != '/')
        return NULL;
    const char *name = rel + dl + 1;
    if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return NULL;
    return name;
}

pf_host_place pf_host_place_of(const char *rel)
{
    for (int i = 0; containers[i]; i++)
        if (!strcmp(rel, containers[i]))
            return PF_HOST_CONTAINER;
    if (!strcmp(rel, PF_LAYOUT_HOST_LETSENCRYPT) || !strcmp(rel, PF_LAYOUT_HOST_CRONTAB))
        return PF_HOST_KEPT;
    if (child_of(rel, PF_LAYOUT_HOST_NGINX_AVAILABLE) ||
        child_of(rel, PF_LAYOUT_HOST_NGINX_ENABLED))
        return PF_HOST_KEPT;
    const char *unit = child_of(rel, PF_LAYOUT_HOST_SYSTEMD);
    bool dropin;
    if (unit && pf_host_unit_name(unit, &dropin))
        return PF_HOST_KEPT;
    return PF_HOST_REFUSED;
}

/* root + "/" + rel, without doubling the slash of "/". */
static void join(char *out, size_t n, const char *root, const char *rel)
{
    size_t rl = strlen(root);
    while (rl && root[rl - 1] == '/')
        rl--;
    snprintf(out, n, "%.*s/%s", (int)rl, root, rel);
}

static const char *root_of(const pf_component_settings *set)
{
    return set->host_root && set->host_root[0] ? set->host_root : "/";
}

/* ---- backup ------------------------------------------------------------------------- */

/* What a backup kept, for describe: one malloc'd block (the orchestrator free()s it). */
typedef struct host_state {
    uint64_t files, bytes, errors;
    size_t count; /* kept paths, NUL-separated in paths[] */
    char paths[];
} host_state;

typedef struct candidates {
    const pf_component_settings *set;
    pf_buf rels; /* NUL-separated, grouped by directory */
    size_t n;
} candidates;

static void keep(candidates *c, const char *rel)
{
    char abs[4200];
    snprintf(abs, sizeof abs, "/%s", rel);
    if (pf_host_excluded(c->set->host_exclude, abs)) {
        pf_info("host: leaving out %s (host_exclude)", abs);
        return;
    }
    pf_buf_append(&c->rels, rel, strlen(rel) + 1);
    c->n++;
}

static bool site_names_domain(const char *path, const char *domain)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    bool hit = false;
    if (!fstat(fd, &st) && S_ISREG(st.st_mode) && (uint64_t)st.st_size <= HOST_SITE_MAX) {
        char *text = malloc((size_t)st.st_size + 1);
        ssize_t got = text ? read(fd, text, (size_t)st.st_size) : -1;
        if (got >= 0)
            hit = pf_host_nginx_names_domain(text, (size_t)got, domain);
        free(text);
    }
    close(fd);
    return hit;
}

static int skip_dots(const struct dirent *de)
{
    return de->d_name[0] != '.';
}

/* The sites that name the domain, then the sites-enabled entries that are links to them
 * (or copies that name it themselves). */
static void find_nginx(candidates *c, const char *root, const char *domain)
{
    char dir[4096], path[4608], rel[4608];
    struct dirent **de = NULL;
    pf_buf kept = PF_BUF_INIT; /* "/name/" for each site kept */
    join(dir, sizeof dir, root, PF_LAYOUT_HOST_NGINX_AVAILABLE);
    int n = scandir(dir, &de, skip_dots, alphasort);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, de[i]->d_name);
        if (site_names_domain(path, domain)) {
            snprintf(rel, sizeof rel, "%s/%s", PF_LAYOUT_HOST_NGINX_AVAILABLE, de[i]->d_name);
            keep(c, rel);
            pf_buf_printf(&kept, "/%s/", de[i]->d_name);
        }
        free(de[i]);
    }
    free(de);
    de = NULL;
    join(dir, sizeof dir, root, PF_LAYOUT_HOST_NGINX_ENABLED);
    n = scandir(dir, &de, skip_dots, alphasort);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, de[i]->d_name);
        struct stat st;
        bool take = false;
        if (!lstat(path, &st) && S_ISLNK(st.st_mode)) {
            char target[4096], want[4200];
            ssize_t tl = readlink(path, target, sizeof target - 1);
            if (tl > 0) {
                target[tl] = 0;
                const char *base = strrchr(target, '/');
                snprintf(want, sizeof want, "/%s/", base ? base + 1 : target);
                take = kept.len && strstr((const char *)kept.data, want);
            }
        } else {
            take = site_names_domain(path, domain);
        }
        if (take) {
            snprintf(rel, sizeof rel, "%s/%s", PF_LAYOUT_HOST_NGINX_ENABLED, de[i]->d_name);
            keep(c, rel);
        }
        free(de[i]);
    }
    free(de);
    pf_buf_free(&kept);
}

static void find_units(candidates *c, const char *root)
{
    char dir[4096], path[4608], rel[4608];
    struct dirent **de = NULL;
    join(dir, sizeof dir, root, PF_LAYOUT_HOST_SYSTEMD);
    int n = scandir(dir, &de, skip_dots, alphasort);
    for (int i = 0; i < n; i++) {
        bool dropin;
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, de[i]->d_name);
        if (pf_host_unit_name(de[i]->d_name, &dropin) && !lstat(path, &st) &&
            dropin == !!S_ISDIR(st.st_mode)) {
            snprintf(rel, sizeof rel, "%s/%s", PF_LAYOUT_HOST_SYSTEMD, de[i]->d_name);
            keep(c, rel);
        }
        free(de[i]);
    }
    free(de);
}

static bool exists(const char *root, const char *rel, bool dir)
{
    char path[4200];
    struct stat st;
    join(path, sizeof path, root, rel);
    return !lstat(path, &st) && (!dir || S_ISDIR(st.st_mode));
}

#define HOST_DEPTH 8

/* Archives the kept paths (relative, grouped by directory) below host, opening the
 * directories on the way as virtual ones. */
static int archive_kept(pf_component_run *run, pf_dir *host, const candidates *c, pf_err *err)
{
    pf_dir *stack[HOST_DEPTH + 1] = {host};
    char open_name[HOST_DEPTH][256];
    int depth = 0, rc = 0;
    const char *root = root_of(run->set);
    for (size_t off = 0; off < c->rels.len && !rc;) {
        const char *rel = (const char *)c->rels.data + off;
        off += strlen(rel) + 1;
        char parts[HOST_DEPTH + 1][256];
        int np = 0;
        for (const char *p = rel; *p && np <= HOST_DEPTH;) {
            const char *e = strchr(p, '/');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            snprintf(parts[np++], sizeof parts[0], "%.*s", (int)l, p);
            p = e ? e + 1 : p + l;
        }
        int common = 0;
        while (common < depth && common < np - 1 && !strcmp(open_name[common], parts[common]))
            common++;
        while (depth > common && !rc)
            rc = pf_dir_end(run->arch, stack[depth--], NULL, err);
        while (!rc && depth < np - 1) {
            if (!(stack[depth + 1] = pf_dir_begin(run->arch, stack[depth], parts[depth], err)))
                rc = -1;
            else {
                snprintf(open_name[depth], sizeof open_name[0], "%s", parts[depth]);
                /* The directory as it is here, for a machine that has none yet. */
                char dir[4200], on_disk[4200];
                size_t used = 0;
                dir[0] = 0;
                for (int i = 0; i <= depth; i++)
                    used += (size_t)snprintf(dir + used, sizeof dir - used, "%s%s", i ? "/" : "",
                                             parts[i]);
                join(on_disk, sizeof on_disk, root, dir);
                struct stat st;
                if (!lstat(on_disk, &st) && S_ISDIR(st.st_mode))
                    pf_dir_take_meta(run->arch, stack[depth + 1], &st);
                depth++;
            }
        }
        if (rc)
            break;
        char abs[4200];
        join(abs, sizeof abs, root, rel);
        pf_info("host: %s", abs);
        if (pf_archive_path(run->arch, stack[depth], parts[np - 1], abs, NULL, err)) {
            if (err->code == PF_EIO || err->code == PF_ENOTFOUND)
                pf_err_prefix(err, "%s (run as root, or set host = no in the config file)", abs);
            rc = -1;
        }
    }
    for (; depth > 0; depth--) {
        if (rc)
            pf_dir_abort(stack[depth]);
        else
            rc = pf_dir_end(run->arch, stack[depth], NULL, err);
    }
    return rc;
}

static int host_backup(pf_component_run *run, pf_err *err)
{
    const pf_component_settings *set = run->set;
    const char *root = root_of(set);
    candidates c = {.set = set, .rels = PF_BUF_INIT};
    if (exists(root, PF_LAYOUT_HOST_LETSENCRYPT, true))
        keep(&c, PF_LAYOUT_HOST_LETSENCRYPT);
    if (set->local_domain && set->local_domain[0])
        find_nginx(&c, root, set->local_domain);
    find_units(&c, root);
    if (exists(root, PF_LAYOUT_HOST_CRONTAB, false))
        keep(&c, PF_LAYOUT_HOST_CRONTAB);

    pf_archive_stats before, after;
    pf_archiver_stats(run->arch, &before);
    pf_dir *host = pf_dir_begin(run->arch, run->root, PF_LAYOUT_HOST, err);
    int rc = host ? archive_kept(run, host, &c, err) : -1;
    if (host && rc)
        pf_dir_abort(host);
    else if (host)
        rc = pf_dir_end(run->arch, host, NULL, err);
    if (rc) {
        pf_buf_free(&c.rels);
        return -1;
    }
    if (!c.n)
        pf_info("host: nothing to keep under %s", root);
    pf_archiver_stats(run->arch, &after);
    host_state *st = malloc(sizeof *st + c.rels.len + 1);
    if (st) {
        st->files = (after.files + after.others) - (before.files + before.others);
        st->bytes = after.bytes - before.bytes;
        st->errors = after.errors - before.errors;
        st->count = c.n;
        if (c.rels.len)
            memcpy(st->paths, c.rels.data, c.rels.len);
        st->paths[c.rels.len] = 0;
    }
    run->state = st;
    pf_buf_free(&c.rels);
    return 0;
}

static void host_describe(pf_component_run *run, cJSON *entry, cJSON *manifest)
{
    (void)manifest;
    const host_state *st = run->state;
    if (!st) {
        cJSON_AddStringToObject(entry, "status", "ok");
        return;
    }
    /* A machine without these files is a fine one: "ok" (monitoring alerts on anything
     * else), with a note saying there was nothing. */
    cJSON_AddStringToObject(entry, "status", st->errors ? "incomplete" : "ok");
    if (!st->count)
        cJSON_AddStringToObject(entry, "note", "nothing to keep");
    cJSON_AddStringToObject(entry, "root", root_of(run->set));
    cJSON_AddNumberToObject(entry, "count", (double)st->count);
    cJSON_AddNumberToObject(entry, "files", (double)st->files);
    cJSON_AddNumberToObject(entry, "bytes", (double)st->bytes);
    cJSON *paths = cJSON_AddArrayToObject(entry, "paths");
    const char *p = st->paths;
    for (size_t i = 0; i < st->count; i++, p += strlen(p) + 1) {
        char abs[4200];
        snprintf(abs, sizeof abs, "/%s", p);
        cJSON_AddItemToArray(paths, cJSON_CreateString(abs));
    }
}

/* ---- restore ------------------------------------------------------------------------ */

/* What restore_check found, for restore: the include list of pf_restore_opts, pointing
 * into the same block (the orchestrator free()s it). */
typedef struct host_plan {
    size_t n;
    const char **include;
} host_plan;

typedef struct plan_walk {
    pf_component_run *run;
    pf_buf kept; /* NUL-separated rels of kept entries */
    size_t nkept, nnew, nsame, ndiffer;
    const char *first_differ_path;
    char first_differ[4200];
} plan_walk;

/* A sink that compares what it is given with the rest of a file. */
typedef struct cmp_sink {
    pf_sink sink;
    int fd;
    bool differs;
} cmp_sink;

static int cmp_write(pf_sink *s, const void *p, size_t n, pf_err *err)
{
    (void)err;
    cmp_sink *c = (cmp_sink *)s;
    char buf[65536];
    const char *q = p;
    while (n && !c->differs) {
        size_t want = n < sizeof buf ? n : sizeof buf;
        ssize_t got = read(c->fd, buf, want);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0 || memcmp(buf, q, (size_t)got)) {
            c->differs = true;
            break;
        }
        q += got;
        n -= (size_t)got;
    }
    return 0;
}

/* Whether the entry on disk at path differs from n (content, type, mode, link target). */
static int entry_differs(pf_repo *r, const pf_node *n, const char *path, bool *differs, pf_err *err)
{
    struct stat st;
    *differs = true;
    if (lstat(path, &st))
        return 0;
    switch (n->type) {
    case PF_NODE_DIR:
        *differs = !S_ISDIR(st.st_mode);
        return 0;
    case PF_NODE_SYMLINK: {
        char t[4096];
        ssize_t l = S_ISLNK(st.st_mode) ? readlink(path, t, sizeof t) : -1;
        *differs = l < 0 || (size_t)l != n->link_len || memcmp(t, n->link, (size_t)l);
        return 0;
    }
    case PF_NODE_FILE:
        break;
    default:
        return 0;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != n->size ||
        (st.st_mode & 07777) != (n->mode & 07777))
        return 0;
    cmp_sink c = {.sink = {.write = cmp_write}, .fd = -1};
    c.fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (c.fd < 0)
        return 0;
    int rc = pf_node_write(r, n, &c.sink, err);
    char extra;
    if (!rc && !c.differs && read(c.fd, &extra, 1) != 0)
        c.differs = true;
    close(c.fd);
    *differs = c.differs;
    return rc;
}

static int plan_entry(plan_walk *w, const pf_node *n, const char *rel, pf_err *err)
{
    char path[4200];
    join(path, sizeof path, root_of(w->run->set), rel);
    struct stat st;
    bool there = lstat(path, &st) == 0, differs = false;
    if (there && entry_differs(w->run->repo, n, path, &differs, err))
        return pf_err_prefix(err, "host/%s", rel);
    if (n->type == PF_NODE_DIR && there && !differs)
        return 0; /* a directory that is there already: nothing to say */
    const char *what = !there ? "new" : differs ? "exists, differs" : "exists, same";
    pf_info("host: would write %s (%s)", path, what);
    if (!there)
        w->nnew++;
    else if (differs) {
        if (!w->ndiffer++)
            snprintf(w->first_differ, sizeof w->first_differ, "%s", path);
    } else
        w->nsame++;
    return 0;
}

/* Walks the snapshot's host/ tree: containers are walked through, kept entries noted and
 * (a kept directory) walked for the plan; anything else refuses the whole restore. */
static int walk(plan_walk *w, const uint8_t *tree_id, const char *rel, bool inside, int depth,
                pf_err *err)
{
    if (depth > 64)
        return pf_err_set(err, PF_ECORRUPT, "host/%s is nested too deep (damaged or forged)", rel);
    pf_tree t;
    if (pf_repo_load_tree(w->run->repo, tree_id, &t, err))
        return pf_err_prefix(err, "host/%s", rel);
    int rc = 0;
    for (size_t i = 0; i < t.count && !rc; i++) {
        const pf_node *n = &t.nodes[i];
        char child[4200];
        snprintf(child, sizeof child, "%s%s%s", rel, *rel ? "/" : "", n->name);
        bool is_dir = n->type == PF_NODE_DIR && n->nblobs == 1;
        if (inside) {
            rc = plan_entry(w, n, child, err);
            if (!rc && is_dir)
                rc = walk(w, n->blobs[0], child, true, depth + 1, err);
            continue;
        }
        switch (pf_host_place_of(child)) {
        case PF_HOST_CONTAINER: {
            /* The restorer replaces whatever is in the way of a directory: a /var/spool/cron
             * that is a link here would become an empty directory, even with --force. */
            char path[8400];
            struct stat st;
            join(path, sizeof path, root_of(w->run->set), child);
            if (!is_dir)
                rc = pf_err_set(err, PF_ECORRUPT,
                                "host/%s is not a directory in the snapshot (damaged or forged): "
                                "refusing it",
                                child);
            else if (!lstat(path, &st) && !S_ISDIR(st.st_mode))
                rc = pf_err_set(err, PF_EEXIST,
                                "%s is %s here, not a directory: refusing to replace it (put "
                                "these files back by hand: permafrost dump ... host/%s/NAME)",
                                path, S_ISLNK(st.st_mode) ? "a symbolic link" : "a file", child);
            else
                rc = walk(w, n->blobs[0], child, false, depth + 1, err);
            break;
        }
        case PF_HOST_KEPT:
            pf_buf_append(&w->kept, child, strlen(child) + 1);
            w->nkept++;
            rc = plan_entry(w, n, child, err);
            if (!rc && is_dir)
                rc = walk(w, n->blobs[0], child, true, depth + 1, err);
            break;
        case PF_HOST_REFUSED:
            rc = pf_err_set(err, PF_ECORRUPT,
                            "host/%s is not a file the host component keeps (damaged or "
                            "forged snapshot): refusing to restore it",
                            child);
            break;
        }
    }
    pf_tree_free(&t);
    return rc;
}

static int host_restore_check(pf_component_run *run, pf_err *err)
{
    if (pf_lookup_path(run->repo, run->tree, PF_LAYOUT_HOST, &run->node[0], err)) {
        if (err->code == PF_ENOTFOUND)
            pf_err_set(err, PF_ENOTFOUND,
                       "the snapshot holds no host files (taken with host = no, or before "
                       "permafrost kept them)");
        return -1;
    }
    if (run->node[0].type != PF_NODE_DIR || run->node[0].nblobs != 1)
        return pf_err_set(err, PF_ECORRUPT, "host is not a directory in the snapshot");
    plan_walk w = {.run = run, .kept = PF_BUF_INIT};
    if (walk(&w, run->node[0].blobs[0], "", false, 0, err)) {
        pf_buf_free(&w.kept);
        return -1;
    }
    if (!w.nkept)
        pf_info("host: the snapshot kept no host files: nothing to write");
    else
        pf_info("host: %zu new, %zu the same, %zu different under %s", w.nnew, w.nsame, w.ndiffer,
                root_of(run->set));
    if (w.ndiffer && !run->set->force) {
        pf_buf_free(&w.kept);
        return pf_err_set(err, PF_EEXIST,
                          "%s exists and differs from the snapshot's%s: refusing to replace "
                          "it (use --force)",
                          w.first_differ, w.ndiffer > 1 ? " (and more, listed above)" : "");
    }
    host_plan *p = malloc(sizeof *p + (w.nkept + 1) * sizeof(char *) + w.kept.len);
    if (!p) {
        pf_buf_free(&w.kept);
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    }
    p->n = w.nkept;
    p->include = (const char **)(p + 1);
    char *names = (char *)(p->include + w.nkept + 1);
    if (w.kept.len)
        memcpy(names, w.kept.data, w.kept.len);
    for (size_t i = 0; i < w.nkept; i++, names += strlen(names) + 1)
        p->include[i] = names;
    p->include[w.nkept] = NULL;
    pf_buf_free(&w.kept);
    run->state = p;
    return 0;
}

static int host_restore(pf_component_run *run, pf_err *err)
{
    const host_plan *p = run->state;
    if (!p || !p->n)
        return 0;
    const char *root = root_of(run->set);
    pf_info("host: restoring %zu path%s under %s", p->n, p->n == 1 ? "" : "s", root);
    /* Owners by name (certbot's keys are root's, the crontab the mastodon user's), and the
     * sites-enabled links as they were: they point at /etc/nginx, outside host/. */
    pf_restore_opts ro = {.include = p->include,
                          .owners = geteuid() == 0,
                          .outside_links = 1,
                          .workers = run->set->workers};
    pf_restore_stats rs = {0};
    if (pf_restore_tree(run->repo, run->node[0].blobs[0], root, &ro, &rs, err))
        return -1;
    if (rs.errors)
        return pf_err_set(err, PF_EIO, "%llu entries could not be restored (see the warnings)",
                          (unsigned long long)rs.errors);
    return 0;
}

const pf_component pf_host_component = {.name = PF_LAYOUT_HOST,
                                        .backup = host_backup,
                                        .describe = host_describe,
                                        .restore_check = host_restore_check,
                                        .restore = host_restore};

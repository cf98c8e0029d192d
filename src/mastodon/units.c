#include "mastodon/units.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        abort();
    return p;
}

static void wipe_free(char *s)
{
    if (s) {
        memset(s, 0, strlen(s));
        free(s);
    }
}

static void set_var(pf_unit_env *env, const char *key, size_t klen, const char *value,
                    const char *source, bool from_file)
{
    for (size_t i = 0; i < env->n; i++)
        if (strlen(env->keys[i]) == klen && !memcmp(env->keys[i], key, klen)) {
            wipe_free(env->values[i]);
            free(env->sources[i]);
            env->values[i] = xstrdup(value);
            env->sources[i] = xstrdup(source);
            env->from_file[i] = from_file;
            return;
        }
    env->keys = xrealloc(env->keys, (env->n + 1) * sizeof *env->keys);
    env->values = xrealloc(env->values, (env->n + 1) * sizeof *env->values);
    env->sources = xrealloc(env->sources, (env->n + 1) * sizeof *env->sources);
    env->from_file = xrealloc(env->from_file, (env->n + 1) * sizeof *env->from_file);
    env->keys[env->n] = strndup(key, klen);
    if (!env->keys[env->n])
        abort();
    env->values[env->n] = xstrdup(value);
    env->sources[env->n] = xstrdup(source);
    env->from_file[env->n] = from_file;
    env->n++;
}

static void drop_var(pf_unit_env *env, size_t i)
{
    free(env->keys[i]);
    wipe_free(env->values[i]);
    free(env->sources[i]);
    memmove(env->keys + i, env->keys + i + 1, (env->n - i - 1) * sizeof *env->keys);
    memmove(env->values + i, env->values + i + 1, (env->n - i - 1) * sizeof *env->values);
    memmove(env->sources + i, env->sources + i + 1, (env->n - i - 1) * sizeof *env->sources);
    memmove(env->from_file + i, env->from_file + i + 1, (env->n - i - 1) * sizeof *env->from_file);
    env->n--;
}

static bool valid_name(const char *k, size_t n)
{
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (i > 0 && c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One C escape after a backslash at *p (p points past the backslash); appends the byte
 * and returns how many characters it used, or 0 when it is not an escape. */
static size_t cunescape(const char *p, pf_buf *out)
{
    static const char from[] = "abfnrtv\\\"'s";
    static const char to[] = "\a\b\f\n\r\t\v\\\"' ";
    const char *f = *p ? strchr(from, *p) : NULL;
    if (f) {
        pf_buf_u8(out, (uint8_t)to[f - from]);
        return 1;
    }
    if (*p == 'x' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
        pf_buf_u8(out, (uint8_t)(hexval(p[1]) * 16 + hexval(p[2])));
        return 3;
    }
    return 0;
}

void pf_units_apply_environment(pf_unit_env *env, const char *value, const char *source)
{
    const char *p = value;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p) {
        for (size_t i = env->n; i-- > 0;)
            if (!env->from_file[i])
                drop_var(env, i);
        return;
    }
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        pf_buf w = PF_BUF_INIT;
        char quote = 0;
        for (; *p && (quote || (*p != ' ' && *p != '\t')); p++) {
            if (quote && *p == quote) {
                quote = 0;
            } else if (!quote && (*p == '"' || *p == '\'')) {
                quote = *p;
            } else if (*p == '\\' && quote != '\'' && p[1]) {
                size_t used = cunescape(p + 1, &w);
                if (!used)
                    pf_buf_u8(&w, (uint8_t)p[1]), used = 1;
                p += used;
            } else if (*p == '%' && p[1] == '%') {
                pf_buf_u8(&w, '%');
                p++;
            } else {
                pf_buf_u8(&w, (uint8_t)*p);
            }
        }
        const char *s = w.len ? (const char *)w.data : "";
        const char *eq = strchr(s, '=');
        if (eq && strlen(s) == w.len && valid_name(s, (size_t)(eq - s)))
            set_var(env, s, (size_t)(eq - s), eq + 1, source, false);
        else
            pf_warn("%s: an Environment= word is not NAME=VALUE: skipped", source);
        pf_buf_free(&w);
    }
}

void pf_units_apply_envfile(pf_unit_env *env, const char *text, size_t len, const char *source)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
            i++;
        if (i >= len)
            break;
        if (text[i] == '#' || text[i] == ';') {
            while (i < len && text[i] != '\n')
                i++;
            continue;
        }
        size_t k = i;
        while (i < len && text[i] != '=' && text[i] != '\n')
            i++;
        size_t kend = i;
        while (kend > k && (text[kend - 1] == ' ' || text[kend - 1] == '\t'))
            kend--;
        if (i >= len || text[i] != '=' || !valid_name(text + k, kend - k)) {
            while (i < len && text[i] != '\n')
                i++;
            pf_warn("%s: a line is not NAME=VALUE: skipped", source);
            continue;
        }
        i++;
        while (i < len && (text[i] == ' ' || text[i] == '\t'))
            i++;
        pf_buf v = PF_BUF_INIT;
        size_t keep = 0; /* length up to the last quoted or escaped byte: never trimmed */
        while (i < len && text[i] != '\n') {
            char c = text[i];
            if (c == '\'') {
                for (i++; i < len && text[i] != '\''; i++)
                    pf_buf_u8(&v, (uint8_t)text[i]);
                i++;
                keep = v.len;
            } else if (c == '"') {
                for (i++; i < len && text[i] != '"'; i++) {
                    if (text[i] == '\\' && i + 1 < len && strchr("\"\\`$\n", text[i + 1])) {
                        i++;
                        if (text[i] == '\n')
                            continue;
                    }
                    pf_buf_u8(&v, (uint8_t)text[i]);
                }
                i++;
                keep = v.len;
            } else if (c == '\\' && i + 1 < len) {
                if (text[i + 1] != '\n')
                    pf_buf_u8(&v, (uint8_t)text[i + 1]);
                i += 2;
                keep = v.len;
            } else {
                if (c != '\r')
                    pf_buf_u8(&v, (uint8_t)c);
                i++;
            }
        }
        while (v.len > keep && (v.data[v.len - 1] == ' ' || v.data[v.len - 1] == '\t'))
            v.len--;
        if (v.data)
            v.data[v.len] = 0;
        if (v.len && memchr(v.data, 0, v.len))
            pf_warn("%s: a value holds a NUL byte: skipped", source);
        else
            set_var(env, text + k, kend - k, v.len ? (const char *)v.data : "", source, true);
        pf_buf_free(&v);
    }
}

static void add_file(pf_unit_env *env, const char *path, bool optional)
{
    env->files = xrealloc(env->files, (env->nfiles + 1) * sizeof *env->files);
    env->optional = xrealloc(env->optional, (env->nfiles + 1) * sizeof *env->optional);
    env->files[env->nfiles] = xstrdup(path);
    env->optional[env->nfiles] = optional;
    env->nfiles++;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = 0;
    size_t lead = strspn(s, " \t");
    memmove(s, s + lead, n - lead + 1);
}

void pf_units_apply_unit(pf_unit_env *env, const char *text, size_t len, const char *source)
{
    bool service = false;
    size_t i = 0;
    while (i < len) {
        /* One logical line: a trailing backslash joins the next line (with a space). */
        pf_buf line = PF_BUF_INIT;
        for (;;) {
            size_t s = i;
            while (i < len && text[i] != '\n')
                i++;
            size_t e = i;
            if (i < len)
                i++;
            while (e > s && text[e - 1] == '\r')
                e--;
            const char *t = text + s;
            size_t tl = e - s;
            size_t lead = 0;
            while (lead < tl && (t[lead] == ' ' || t[lead] == '\t'))
                lead++;
            /* Comment lines inside a continuation are skipped, as systemd does. */
            if (line.len && lead < tl && (t[lead] == '#' || t[lead] == ';'))
                continue;
            if (tl && t[tl - 1] == '\\') {
                pf_buf_append(&line, t, tl - 1);
                pf_buf_u8(&line, ' ');
                if (i < len)
                    continue;
            } else {
                pf_buf_append(&line, t, tl);
            }
            break;
        }
        pf_buf_u8(&line, 0);
        char *l = (char *)line.data;
        trim(l);
        if (*l == '[') {
            service = !strncmp(l, "[Service]", 9);
        } else if (service && *l && *l != '#' && *l != ';') {
            char *eq = strchr(l, '=');
            if (eq) {
                *eq = 0;
                char *key = l, *val = eq + 1;
                trim(key);
                trim(val);
                if (!strcmp(key, "Environment")) {
                    pf_units_apply_environment(env, val, source);
                } else if (!strcmp(key, "EnvironmentFile")) {
                    if (!*val) {
                        for (size_t f = 0; f < env->nfiles; f++)
                            free(env->files[f]);
                        env->nfiles = 0;
                    } else {
                        bool opt = *val == '-';
                        add_file(env, val + opt, opt);
                    }
                }
            }
        }
        pf_buf_free(&line);
    }
}

static int read_file(const char *path, pf_buf *out, pf_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pf_err_sys(err, errno == ENOENT ? PF_ENOTFOUND : PF_EIO, "cannot read %s", path);
    for (;;) {
        pf_buf_reserve(out, 65536);
        ssize_t r = read(fd, out->data + out->len, 65536);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            pf_err_sys(err, PF_EIO, "cannot read %s", path);
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        out->len += (size_t)r;
        if (out->len > PF_UNITS_MAX_FILE) {
            close(fd);
            return pf_err_set(err, PF_EIO,
                              "%s: larger than %d bytes, not a unit or environment file", path,
                              PF_UNITS_MAX_FILE);
        }
    }
    close(fd);
    out->data[out->len] = 0;
    return 0;
}

static void note_read(pf_unit_env *env, const char *path)
{
    env->read = xrealloc(env->read, (env->nread + 1) * sizeof *env->read);
    env->read[env->nread++] = xstrdup(path);
}

static int apply_unit_file(pf_unit_env *env, const char *path, pf_err *err)
{
    pf_buf b = PF_BUF_INIT;
    int rc = read_file(path, &b, err);
    if (!rc) {
        pf_units_apply_unit(env, (const char *)b.data, b.len, path);
        note_read(env, path);
    }
    pf_buf_free(&b);
    return rc;
}

/* Splits path into directories (a static-size list is enough: a handful at most). */
#define MAX_DIRS 16
static size_t split_path(const char *path, char *buf, size_t bufsz, char **dirs)
{
    snprintf(buf, bufsz, "%s", path && *path ? path : PF_UNITS_DEFAULT_PATH);
    size_t n = 0;
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d && n < MAX_DIRS;
         d = strtok_r(NULL, ":", &save))
        dirs[n++] = d;
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The drop-in names of d/name.d/ *.conf not seen yet, added to names (with their dir). */
static void collect_dropins(const char *dir, const char *name, char ***names, char ***paths,
                            size_t *n)
{
    char d[4096];
    snprintf(d, sizeof d, "%s/%s.d", dir, name);
    DIR *dh = opendir(d);
    if (!dh)
        return;
    struct dirent *de;
    while ((de = readdir(dh))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".conf") || de->d_name[0] == '.')
            continue;
        bool seen = false;
        for (size_t i = 0; i < *n; i++)
            seen |= !strcmp((*names)[i], de->d_name);
        if (seen)
            continue;
        *names = xrealloc(*names, (*n + 1) * sizeof **names);
        *paths = xrealloc(*paths, (*n + 1) * sizeof **paths);
        (*names)[*n] = xstrdup(de->d_name);
        char *p = NULL;
        if (asprintf(&p, "%s/%s", d, de->d_name) < 0)
            abort();
        (*paths)[*n] = p;
        (*n)++;
    }
    closedir(dh);
}

/* "a@b.service" -> "a@.service"; NULL when name is not an instance. */
static char *template_of(const char *name)
{
    const char *at = strchr(name, '@');
    const char *dot = strrchr(name, '.');
    if (!at || !dot || dot < at || dot == at + 1)
        return NULL;
    char *t = NULL;
    if (asprintf(&t, "%.*s%s", (int)(at - name + 1), name, dot) < 0)
        abort();
    return t;
}

int pf_units_load(const char *path, const char *name, pf_unit_env *env, pf_err *err)
{
    char buf[4096], *dirs[MAX_DIRS];
    size_t nd = split_path(path, buf, sizeof buf, dirs);
    char *tmpl = template_of(name);
    char main_path[4096] = "";
    for (size_t i = 0; i < nd && !*main_path; i++) {
        const char *cand[2] = {name, tmpl};
        for (int c = 0; c < 2 && !*main_path; c++) {
            if (!cand[c])
                continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", dirs[i], cand[c]);
            struct stat st;
            if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
                snprintf(main_path, sizeof main_path, "%s", p);
        }
    }
    if (!*main_path) {
        free(tmpl);
        return 0;
    }
    int rc = apply_unit_file(env, main_path, err);
    char **names = NULL, **paths = NULL;
    size_t n = 0;
    for (size_t i = 0; i < nd && !rc; i++) {
        collect_dropins(dirs[i], name, &names, &paths, &n);
        if (tmpl)
            collect_dropins(dirs[i], tmpl, &names, &paths, &n);
    }
    /* In file-name order; sort the paths along with their names. */
    if (n > 1) {
        char **pairs = xrealloc(NULL, n * sizeof *pairs);
        for (size_t i = 0; i < n; i++) {
            if (asprintf(&pairs[i], "%s%c%s", names[i], 1, paths[i]) < 0)
                abort();
        }
        qsort(pairs, n, sizeof *pairs, cmp_str);
        for (size_t i = 0; i < n; i++) {
            free(paths[i]);
            paths[i] = xstrdup(strchr(pairs[i], 1) + 1);
            free(pairs[i]);
        }
        free(pairs);
    }
    for (size_t i = 0; i < n; i++) {
        if (!rc)
            rc = apply_unit_file(env, paths[i], err);
        free(names[i]);
        free(paths[i]);
    }
    free(names);
    free(paths);
    free(tmpl);
    for (size_t f = 0; f < env->nfiles && !rc; f++) {
        pf_buf b = PF_BUF_INIT;
        pf_err e2 = {0};
        if (env->files[f][0] != '/') {
            pf_warn("%s: EnvironmentFile=%s is not an absolute path: skipped", main_path,
                    env->files[f]);
        } else if (read_file(env->files[f], &b, &e2) == 0) {
            pf_units_apply_envfile(env, (const char *)b.data, b.len, env->files[f]);
        } else if (!(env->optional[f] && e2.code == PF_ENOTFOUND)) {
            *err = e2;
            pf_err_prefix(err, "%s: EnvironmentFile", main_path);
            rc = -1;
        }
        pf_buf_free(&b);
    }
    return rc ? -1 : 1;
}

int pf_units_mastodon(const char *path, pf_unit_env *env, const char **unit, pf_err *err)
{
    *unit = NULL;
    static const char *const fixed[] = {"mastodon-web.service", "mastodon-sidekiq.service"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        int rc = pf_units_load(path, fixed[i], env, err);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            *unit = fixed[i];
            return 0;
        }
    }
    /* mastodon-streaming.service, mastodon-streaming@.service, ...: the first by name. */
    char buf[4096], *dirs[MAX_DIRS];
    size_t nd = split_path(path, buf, sizeof buf, dirs);
    static char found[256];
    found[0] = 0;
    for (size_t i = 0; i < nd; i++) {
        DIR *dh = opendir(dirs[i]);
        if (!dh)
            continue;
        struct dirent *de;
        while ((de = readdir(dh))) {
            size_t l = strlen(de->d_name);
            if (strncmp(de->d_name, "mastodon-streaming", 18) || l < 8 ||
                strcmp(de->d_name + l - 8, ".service") || l >= sizeof found)
                continue;
            if (!found[0] || strcmp(de->d_name, found) < 0)
                snprintf(found, sizeof found, "%s", de->d_name);
        }
        closedir(dh);
        if (found[0])
            break;
    }
    if (!found[0])
        return 0;
    int rc = pf_units_load(path, found, env, err);
    if (rc < 0)
        return -1;
    if (rc == 1)
        *unit = found;
    return 0;
}

const char *pf_unit_env_get(const pf_unit_env *env, const char *key, const char **source)
{
    for (size_t i = 0; i < env->n; i++)
        if (!strcmp(env->keys[i], key)) {
            if (source)
                *source = env->sources[i];
            return env->values[i];
        }
    return NULL;
}

void pf_unit_env_free(pf_unit_env *env)
{
    if (!env)
        return;
    for (size_t i = 0; i < env->n; i++) {
        free(env->keys[i]);
        wipe_free(env->values[i]);
        free(env->sources[i]);
    }
    free(env->keys);
    free(env->values);
    free(env->sources);
    free(env->from_file);
    for (size_t i = 0; i < env->nfiles; i++)
        free(env->files[i]);
    free(env->files);
    free(env->optional);
    for (size_t i = 0; i < env->nread; i++)
        free(env->read[i]);
    free(env->read);
    memset(env, 0, sizeof *env);
}

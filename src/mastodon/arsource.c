#include "mastodon/arsource.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "mastodon/units.h"

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* The same file, by name or through symbolic links. */
static bool same_file(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    if (!strcmp(a, b))
        return true;
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb);
}

static void add_file(pf_ar_keyset *ks, const char *path)
{
    for (size_t i = 0; i < ks->nfiles; i++)
        if (!strcmp(ks->files[i], path))
            return;
    char **f = realloc(ks->files, (ks->nfiles + 1) * sizeof *f);
    if (!f)
        abort();
    ks->files = f;
    ks->files[ks->nfiles++] = xstrdup(path);
}

int pf_ar_keyset_find(const pf_mastodon_env *env, const char *env_path, const char *unit_path,
                      pf_ar_keyset *ks, pf_err *err)
{
    (void)err;
    memset(ks, 0, sizeof *ks);
    pf_unit_env u = {0};
    pf_err uerr = {0};
    if (pf_units_mastodon(unit_path, &u, &ks->unit, &uerr)) {
        /* Not fatal: the backup goes on with .env.production, and if the database needs
         * keys it lacks, the check inside the dump's snapshot says so loudly. */
        pf_warn("cannot read Mastodon's systemd units (%s): looking for the "
                "ACTIVE_RECORD_ENCRYPTION_* keys in .env.production only",
                uerr.msg);
        pf_unit_env_free(&u);
        ks->unit = NULL;
    }
    for (int i = 0; i < 3; i++) {
        const char *name = pf_ar_key_names[i];
        const char *src = NULL;
        const char *sv = pf_unit_env_get(&u, name, &src);
        const char *ev = env ? pf_mastodon_env_get(env, name) : NULL;
        if (sv && !*sv)
            sv = NULL;
        if (ev && !*ev)
            ev = NULL;
        if (sv && !same_file(src, env_path)) {
            if (ev && strcmp(ev, sv))
                pf_warn("%s differs between %s and %s: Mastodon uses the one of %s", name, env_path,
                        src, src);
            ks->value[i] = xstrdup(sv);
            ks->source[i] = xstrdup(src);
            ks->from_systemd[i] = true;
            add_file(ks, src);
        } else if (ev || sv) {
            ks->value[i] = xstrdup(ev ? ev : sv);
            ks->source[i] = xstrdup(env_path ? env_path : ".env.production");
        }
    }
    pf_unit_env_free(&u);
    return 0;
}

pf_ar_keys pf_ar_keyset_keys(const pf_ar_keyset *ks)
{
    return (pf_ar_keys){
        .primary = ks->value[0], .deterministic = ks->value[1], .salt = ks->value[2]};
}

int pf_ar_keyset_count(const pf_ar_keyset *ks)
{
    int n = 0;
    for (int i = 0; i < 3; i++)
        n += ks->value[i] != NULL;
    return n;
}

void pf_ar_keyset_env_text(const pf_ar_keyset *ks, pf_buf *out)
{
    for (int i = 0; i < 3; i++) {
        const char *v = ks->value[i];
        if (!v)
            continue;
        bool plain =
            strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=._-") ==
            strlen(v);
        pf_buf_printf(out, "%s=", pf_ar_key_names[i]);
        if (plain) {
            pf_buf_append_str(out, v);
        } else {
            pf_buf_u8(out, '"');
            for (const char *p = v; *p; p++) {
                if (strchr("\"\\$`", *p))
                    pf_buf_u8(out, '\\');
                pf_buf_u8(out, (uint8_t)*p);
            }
            pf_buf_u8(out, '"');
        }
        pf_buf_u8(out, '\n');
    }
}

int pf_ar_keys_differ(const char *const snap[3], const pf_mastodon_env *target, char *names,
                      size_t n)
{
    int differ = 0;
    if (n)
        names[0] = 0;
    for (int i = 0; i < 3; i++) {
        const char *t = pf_mastodon_env_get(target, pf_ar_key_names[i]);
        if (!snap[i] || !*snap[i] || !t || !*t || !strcmp(snap[i], t))
            continue;
        differ++;
        size_t l = strlen(names);
        snprintf(names + l, n - l, "%s%s", l ? ", " : "", pf_ar_key_names[i]);
    }
    return differ;
}

void pf_ar_keyset_free(pf_ar_keyset *ks)
{
    if (!ks)
        return;
    for (int i = 0; i < 3; i++) {
        wipe_free(ks->value[i]);
        free(ks->source[i]);
    }
    for (size_t i = 0; i < ks->nfiles; i++)
        free(ks->files[i]);
    free(ks->files);
    memset(ks, 0, sizeof *ks);
}

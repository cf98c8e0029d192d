/* The component registry and what all components share: see component.h. */
#include "component/component.h"

#include <stdio.h>
#include <string.h>

/* Backup order (component/layout.h says why). */
const pf_component *const pf_components[] = {&pf_secrets_component,
                                             &pf_postgres_component,
                                             &pf_pgphys_component,
                                             &pf_redis_component,
                                             &pf_media_component,
                                             &pf_host_component,
                                             NULL};

size_t pf_component_count(void)
{
    size_t n = 0;
    while (pf_components[n])
        n++;
    return n;
}

unsigned pf_component_all(void)
{
    return (1u << pf_component_count()) - 1;
}

unsigned pf_component_bit(const pf_component *c)
{
    for (int i = 0; pf_components[i]; i++)
        if (pf_components[i] == c)
            return 1u << i;
    return 0;
}

static int index_of(const char *word)
{
    for (int i = 0; pf_components[i]; i++) {
        const pf_component *c = pf_components[i];
        if (!strcmp(c->name, word))
            return i;
        for (const char *const *a = c->aliases; a && *a; a++)
            if (!strcmp(*a, word))
                return i;
    }
    return -1;
}

const pf_component *pf_component_find(const char *word)
{
    int i = index_of(word);
    return i < 0 ? NULL : pf_components[i];
}

/* "secrets, db, redis, media": the first word each component answers to (the short one
 * people type). */
static void valid_words(char *out, size_t n)
{
    size_t at = 0;
    out[0] = 0;
    for (int i = 0; pf_components[i] && at < n; i++) {
        const pf_component *c = pf_components[i];
        const char *w = c->aliases && c->aliases[0] ? c->aliases[0] : c->name;
        at += (size_t)snprintf(out + at, n - at, "%s%s", i ? ", " : "", w);
    }
}

int pf_component_parse_only(const char *list, unsigned *mask, pf_err *err)
{
    char buf[256], words[128];
    snprintf(buf, sizeof buf, "%s", list);
    valid_words(words, sizeof words);
    *mask = 0;
    for (char *save = NULL, *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        int i = index_of(w);
        if (i < 0)
            return pf_err_set(err, PF_EUSAGE, "--only: unknown component \"%s\" (use %s)", w,
                              words);
        *mask |= 1u << i;
    }
    if (!*mask)
        return pf_err_set(err, PF_EUSAGE, "--only needs at least one of %s", words);
    return 0;
}

int pf_component_stream(pf_archiver *a, pf_dir *d, const char *name,
                        pf_component_produce_fn produce, void *ctx, pf_err *err)
{
    pf_sink *sink = pf_archive_stream_begin(a, d, name, 0600, err);
    if (!sink)
        return -1;
    if (produce(ctx, sink, err)) {
        pf_archive_stream_abort(sink);
        return -1;
    }
    return pf_archive_stream_end(a, sink, err);
}

void pf_component_error(pf_err *err, const char *stage, const pf_component *c,
                        const pf_component_run *run)
{
    if (run->part)
        pf_err_prefix(err, "%s: %s (%s)", stage, c->name, run->part);
    else
        pf_err_prefix(err, "%s: %s", stage, c->name);
}

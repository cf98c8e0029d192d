/* libFuzzer: snapshot JSON decoding. Whatever decodes must encode again and decode to the
 * same snapshot (its media check too). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo/snapshot.h"

static int same_strs(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]))
            return 0;
    return 1;
}

/* Compared as printed: a number too large for a double parses as infinity and prints as
 * null, so only the printed form is stable across one round trip. */
static int same_json(const cJSON *a, const cJSON *b)
{
    if (!a || !b)
        return a == b;
    char *x = cJSON_PrintUnformatted(a), *y = cJSON_PrintUnformatted(b);
    int same = x && y && !strcmp(x, y);
    cJSON_free(x);
    cJSON_free(y);
    return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pf_snapshot s, t;
    pf_err err = {0};
    if (pf_snapshot_decode((const char *)data, size, &s, &err))
        return 0;
    if (s.tz_offset < -86400 || s.tz_offset > 86400)
        abort();
    char when[64];
    pf_snapshot_time_str(&s, when, sizeof when);
    char *text = pf_snapshot_encode(&s);
    if (!text)
        abort();
    if (pf_snapshot_decode(text, strlen(text), &t, &err))
        abort();
    if (t.time_ns != s.time_ns || t.tz_offset != s.tz_offset ||
        memcmp(t.tree, s.tree, sizeof s.tree) || strcmp(t.parent, s.parent) ||
        strcmp(t.host, s.host) || strcmp(t.user, s.user) || strcmp(t.program, s.program) ||
        !same_strs(s.tags, s.ntags, t.tags, t.ntags) ||
        !same_strs(s.paths, s.npaths, t.paths, t.npaths) ||
        !same_json(s.components, t.components) || !same_json(s.manifest, t.manifest) ||
        !same_json(s.stats, t.stats) || t.kind != s.kind || t.complete != s.complete ||
        t.skipped_count != s.skipped_count ||
        !same_strs(s.skipped, s.nskipped, t.skipped, t.nskipped) ||
        s.media_check.recorded != t.media_check.recorded)
        abort();
    if (s.media_check.recorded) {
        cJSON *a = pf_media_check_to_json(&s.media_check),
              *b = pf_media_check_to_json(&t.media_check);
        if (!same_json(a, b))
            abort();
        cJSON_Delete(a);
        cJSON_Delete(b);
    }
    cJSON_free(text);
    pf_snapshot_free(&t);
    pf_snapshot_free(&s);
    return 0;
}

#include "repo/retention.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- parsing ---------------------------------------------------------------------- */

int pf_retention_parse_duration(const char *s, pf_retention_duration *d, pf_err *err)
{
    pf_retention_duration v = {0, 0, 0, 0};
    bool seen[4] = {false, false, false, false};
    const char *p = s ? s : "";

    while (isspace((unsigned char)*p))
        p++;
    size_t end = strlen(p);
    while (end > 0 && isspace((unsigned char)p[end - 1]))
        end--;
    if (end == 0)
        return pf_err_set(err, PF_EUSAGE,
                          "empty duration: give e.g. \"7d\", \"1y6m\" or \"2d12h\" "
                          "(y = years, m = months, d = days, h = hours)");
    const char *stop = p + end;
    while (p < stop) {
        if (*p == '-')
            return pf_err_set(err, PF_EUSAGE, "duration \"%s\": negative values are not allowed",
                              s);
        if (!isdigit((unsigned char)*p))
            return pf_err_set(err, PF_EUSAGE,
                              "duration \"%s\": expected a number at \"%.*s\" "
                              "(format: e.g. \"1y6m\", \"7d\", \"2d12h\")",
                              s, (int)(stop - p), p);
        long num = 0;
        while (p < stop && isdigit((unsigned char)*p)) {
            num = num * 10 + (*p - '0');
            if (num > PF_RETENTION_MAX_NUMBER)
                return pf_err_set(err, PF_EUSAGE, "duration \"%s\": number too large (max %d)", s,
                                  PF_RETENTION_MAX_NUMBER);
            p++;
        }
        if (p == stop)
            return pf_err_set(err, PF_EUSAGE,
                              "duration \"%s\": no unit after the number %ld "
                              "(use y, m, d or h)",
                              s, num);
        int field;
        switch (tolower((unsigned char)*p)) {
        case 'y':
            field = 0;
            break;
        case 'm':
            field = 1;
            break;
        case 'd':
            field = 2;
            break;
        case 'h':
            field = 3;
            break;
        default:
            return pf_err_set(err, PF_EUSAGE,
                              "duration \"%s\": unknown unit '%c' after the number %ld "
                              "(use y = years, m = months, d = days, h = hours)",
                              s, *p, num);
        }
        if (seen[field])
            return pf_err_set(err, PF_EUSAGE, "duration \"%s\": unit '%c' given twice", s, *p);
        seen[field] = true;
        int *fields[4] = {&v.years, &v.months, &v.days, &v.hours};
        *fields[field] = (int)num;
        p++;
    }
    *d = v;
    return 0;
}

size_t pf_retention_format_duration(const pf_retention_duration *d, char *out, size_t cap)
{
    char tmp[96];
    size_t n = 0;
    const int vals[4] = {d->years, d->months, d->days, d->hours};
    const char units[4] = {'y', 'm', 'd', 'h'};
    for (int i = 0; i < 4; i++)
        if (vals[i] != 0)
            n += (size_t)snprintf(tmp + n, sizeof tmp - n, "%d%c", vals[i], units[i]);
    if (n == 0)
        n = (size_t)snprintf(tmp, sizeof tmp, "0h");
    if (cap > 0)
        snprintf(out, cap, "%s", tmp);
    return n;
}

int pf_retention_parse_count(const char *s, int *n, pf_err *err)
{
    const char *p = s ? s : "";
    while (isspace((unsigned char)*p))
        p++;
    size_t len = strlen(p);
    while (len > 0 && isspace((unsigned char)p[len - 1]))
        len--;
    if (len == 0)
        return pf_err_set(err, PF_EUSAGE, "empty count: give a number of snapshots, or -1");
    if ((len == 2 && strncmp(p, "-1", 2) == 0) || (len == 3 && strncasecmp(p, "all", 3) == 0) ||
        (len == 9 && strncasecmp(p, "unlimited", 9) == 0)) {
        *n = PF_RETENTION_UNLIMITED;
        return 0;
    }
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)p[i]))
            return pf_err_set(err, PF_EUSAGE,
                              "\"%s\" is not a count: give a number of snapshots, "
                              "or -1 (or \"unlimited\") to keep all",
                              s);
        v = v * 10 + (p[i] - '0');
        if (v > PF_RETENTION_MAX_NUMBER)
            return pf_err_set(err, PF_EUSAGE, "count \"%s\" is too large (max %d)", s,
                              PF_RETENTION_MAX_NUMBER);
    }
    *n = (int)v;
    return 0;
}

int pf_retention_parse_group_by(const char *s, unsigned *group_by, pf_err *err)
{
    unsigned g = 0;
    const char *p = s ? s : "";
    if (strcasecmp(p, "none") == 0) {
        *group_by = 0;
        return 0;
    }
    while (*p) {
        size_t len = strcspn(p, ",");
        const char *w = p;
        size_t wl = len;
        while (wl > 0 && isspace((unsigned char)*w))
            w++, wl--;
        while (wl > 0 && isspace((unsigned char)w[wl - 1]))
            wl--;
        if (wl == 0) {
            /* empty item, as restic allows: "host," */
        } else if ((wl == 4 && strncasecmp(w, "host", 4) == 0) ||
                   (wl == 5 && strncasecmp(w, "hosts", 5) == 0)) {
            g |= PF_RETENTION_GROUP_HOST;
        } else if ((wl == 3 && strncasecmp(w, "tag", 3) == 0) ||
                   (wl == 4 && strncasecmp(w, "tags", 4) == 0)) {
            g |= PF_RETENTION_GROUP_TAGS;
        } else if ((wl == 4 && strncasecmp(w, "path", 4) == 0) ||
                   (wl == 5 && strncasecmp(w, "paths", 5) == 0)) {
            g |= PF_RETENTION_GROUP_PATHS;
        } else if ((wl == 4 && strncasecmp(w, "kind", 4) == 0) ||
                   (wl == 5 && strncasecmp(w, "kinds", 5) == 0)) {
            g |= PF_RETENTION_GROUP_KIND;
        } else {
            return pf_err_set(err, PF_EUSAGE,
                              "unknown grouping \"%.*s\": use a comma-separated combination of "
                              "host, paths, tags and kind, or none",
                              (int)wl, w);
        }
        p += len;
        if (*p == ',')
            p++;
    }
    *group_by = g;
    return 0;
}

/* ---- policy ----------------------------------------------------------------------- */

static bool duration_zero(const pf_retention_duration *d)
{
    return d->years == 0 && d->months == 0 && d->days == 0 && d->hours == 0;
}

bool pf_retention_policy_empty(const pf_retention_policy *p)
{
    return p->keep_last == 0 && p->keep_hourly == 0 && p->keep_daily == 0 && p->keep_weekly == 0 &&
           p->keep_monthly == 0 && p->keep_yearly == 0 && duration_zero(&p->keep_within) &&
           p->n_keep_tags == 0;
}

int pf_retention_policy_validate(const pf_retention_policy *p, pf_err *err)
{
    const struct {
        const char *name;
        int v;
    } counts[6] = {
        {"keep-last", p->keep_last},       {"keep-hourly", p->keep_hourly},
        {"keep-daily", p->keep_daily},     {"keep-weekly", p->keep_weekly},
        {"keep-monthly", p->keep_monthly}, {"keep-yearly", p->keep_yearly},
    };
    for (int i = 0; i < 6; i++) {
        if (counts[i].v < PF_RETENTION_UNLIMITED)
            return pf_err_set(err, PF_EUSAGE,
                              "%s: %d is not allowed: give a number of snapshots, "
                              "or -1 for unlimited",
                              counts[i].name, counts[i].v);
        if (counts[i].v > PF_RETENTION_MAX_NUMBER)
            return pf_err_set(err, PF_EUSAGE, "%s: %d is too large (max %d)", counts[i].name,
                              counts[i].v, PF_RETENTION_MAX_NUMBER);
    }
    const pf_retention_duration *w = &p->keep_within;
    const int wv[4] = {w->years, w->months, w->days, w->hours};
    for (int i = 0; i < 4; i++) {
        if (wv[i] < 0)
            return pf_err_set(err, PF_EUSAGE, "keep-within: negative durations are not allowed");
        if (wv[i] > PF_RETENTION_MAX_NUMBER)
            return pf_err_set(err, PF_EUSAGE, "keep-within: %d is too large (max %d)", wv[i],
                              PF_RETENTION_MAX_NUMBER);
    }
    if (p->n_keep_tags > 0 && !p->keep_tags)
        return pf_err_set(err, PF_EUSAGE, "keep-tag: tag list missing");
    for (size_t i = 0; i < p->n_keep_tags; i++)
        if (!p->keep_tags[i] || !p->keep_tags[i][0])
            return pf_err_set(err, PF_EUSAGE, "keep-tag: empty tag name");
    if (p->group_by & ~PF_RETENTION_GROUP_ALL)
        return pf_err_set(err, PF_EUSAGE, "group-by: unknown grouping bits 0x%x", p->group_by);
    if (pf_retention_policy_empty(p))
        return pf_err_set(err, PF_EUSAGE,
                          "no policy given: would remove everything "
                          "(give at least one of keep-last, keep-hourly, keep-daily, "
                          "keep-weekly, keep-monthly, keep-yearly, keep-within, keep-tag)");
    return 0;
}

void pf_retention_policy_describe(const pf_retention_policy *p, pf_buf *out)
{
    const struct {
        int v;
        const char *what;
    } counts[6] = {
        {p->keep_last, "last"},     {p->keep_hourly, "hourly"},   {p->keep_daily, "daily"},
        {p->keep_weekly, "weekly"}, {p->keep_monthly, "monthly"}, {p->keep_yearly, "yearly"},
    };
    bool any = false;
    for (int i = 0; i < 6; i++) {
        if (counts[i].v == 0)
            continue;
        pf_buf_append_str(out, any ? ", " : "keep ");
        if (counts[i].v == PF_RETENTION_UNLIMITED)
            pf_buf_printf(out, "all %s", counts[i].what);
        else
            pf_buf_printf(out, "%d %s", counts[i].v, counts[i].what);
        any = true;
    }
    if (any)
        pf_buf_append_str(out, " snapshots");
    if (p->n_keep_tags > 0) {
        pf_buf_append_str(out, any ? " and " : "keep ");
        pf_buf_append_str(out, "all snapshots tagged ");
        for (size_t i = 0; i < p->n_keep_tags; i++)
            pf_buf_printf(out, "%s%s",
                          i == 0                    ? ""
                          : i + 1 == p->n_keep_tags ? " or "
                                                    : ", ",
                          p->keep_tags[i] ? p->keep_tags[i] : "");
        any = true;
    }
    if (!duration_zero(&p->keep_within)) {
        char d[96];
        pf_retention_format_duration(&p->keep_within, d, sizeof d);
        pf_buf_append_str(out, any ? " and " : "keep ");
        pf_buf_printf(out, "all snapshots within %s of the newest", d);
        any = true;
    }
    if (!any)
        pf_buf_append_str(out, "keep nothing");
    static const struct {
        unsigned bit;
        const char *name;
    } fields[] = {{PF_RETENTION_GROUP_HOST, "host"},
                  {PF_RETENTION_GROUP_PATHS, "paths"},
                  {PF_RETENTION_GROUP_TAGS, "tags"},
                  {PF_RETENTION_GROUP_KIND, "kind"}};
    size_t nf = 0, done = 0;
    for (size_t i = 0; i < 4; i++)
        nf += (p->group_by & fields[i].bit) != 0;
    if (nf == 0)
        pf_buf_append_str(out, ", all snapshots in one group");
    for (size_t i = 0; i < 4; i++) {
        if (!(p->group_by & fields[i].bit))
            continue;
        pf_buf_append_str(out, done == 0 ? ", grouped by " : done + 1 == nf ? " and " : ", ");
        pf_buf_append_str(out, fields[i].name);
        done++;
    }
}

/* ---- calendar --------------------------------------------------------------------- */

static bool is_leap(long year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

/* ISO 8601 week of a broken-down local time, as year * 100 + week. The ISO year of a
 * week is the year of its Thursday. */
static int64_t iso_week(const struct tm *tm)
{
    long year = (long)tm->tm_year + 1900;
    int wday = (tm->tm_wday + 6) % 7;    /* Monday = 0 */
    int yday = tm->tm_yday + (3 - wday); /* day of year of this week's Thursday */
    if (yday < 0) {
        year--;
        yday += is_leap(year) ? 366 : 365;
    } else if (yday >= (is_leap(year) ? 366 : 365)) {
        yday -= is_leap(year) ? 366 : 365;
        year++;
    }
    return (int64_t)year * 100 + yday / 7 + 1;
}

enum { RULE_LAST, RULE_HOURLY, RULE_DAILY, RULE_WEEKLY, RULE_MONTHLY, RULE_YEARLY, NRULES };

static const char *const rule_reason[NRULES] = {
    "last snapshot",   "hourly snapshot",  "daily snapshot",
    "weekly snapshot", "monthly snapshot", "yearly snapshot",
};

/* Bucket value of a snapshot for one rule; `rank` is its position in the group. */
static int64_t bucket(int rule, const struct tm *tm, size_t rank)
{
    int64_t y = (int64_t)tm->tm_year + 1900;
    int64_t mon = tm->tm_mon + 1;
    switch (rule) {
    case RULE_LAST:
        return (int64_t)rank;
    case RULE_HOURLY:
        return ((y * 100 + mon) * 100 + tm->tm_mday) * 100 + tm->tm_hour;
    case RULE_DAILY:
        return (y * 100 + mon) * 100 + tm->tm_mday;
    case RULE_WEEKLY:
        return iso_week(tm);
    case RULE_MONTHLY:
        return y * 100 + mon;
    default:
        return y;
    }
}

/* latest - d on the local calendar (see pf_retention_duration). Returns false when the
 * result cannot be represented, which callers read as "before every snapshot". */
static bool subtract_duration(int64_t latest, const pf_retention_duration *d, int64_t *out)
{
    time_t t = (time_t)latest;
    struct tm tm;
    if (!localtime_r(&t, &tm))
        return false;
    tm.tm_year -= d->years;
    tm.tm_mon -= d->months;
    tm.tm_mday -= d->days;
    tm.tm_isdst = -1;
    errno = 0;
    time_t r = mktime(&tm);
    if (r == (time_t)-1 && errno != 0)
        return false;
    *out = (int64_t)r - (int64_t)d->hours * 3600;
    return true;
}

/* ---- apply ------------------------------------------------------------------------ */

/* A sorted copy of a list of strings: order does not split a group. */
typedef struct strset {
    const char **v;
    size_t n;
} strset;

typedef struct entry {
    size_t idx;
    int64_t time;
    const char *host; /* "" when not grouping by host */
    const char *kind; /* "" when not grouping by kind */
    strset paths;     /* empty when not grouping by paths */
    strset tags;      /* empty when not grouping by tags */
} entry;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_set(const strset *a, const strset *b)
{
    int c;
    for (size_t i = 0; i < a->n && i < b->n; i++)
        if ((c = strcmp(a->v[i], b->v[i])) != 0)
            return c;
    return (a->n > b->n) - (a->n < b->n);
}

static int cmp_key(const entry *a, const entry *b)
{
    int c = strcmp(a->host, b->host);
    if (!c)
        c = strcmp(a->kind, b->kind);
    if (!c)
        c = cmp_set(&a->paths, &b->paths);
    if (!c)
        c = cmp_set(&a->tags, &b->tags);
    return c;
}

/* Fills *set with a sorted copy of v[0..n) (NULL items read as ""). */
static int set_copy(strset *set, const char *const *v, size_t n)
{
    set->v = NULL;
    set->n = 0;
    if (n == 0)
        return 0;
    set->v = malloc(n * sizeof *set->v);
    if (!set->v)
        return -1;
    for (size_t j = 0; j < n; j++)
        set->v[j] = v && v[j] ? v[j] : "";
    set->n = n;
    qsort(set->v, n, sizeof *set->v, cmp_str);
    return 0;
}

static void entries_free(entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].tags.v);
        free(e[i].paths.v);
    }
    free(e);
}

/* Group key, then newest first, then input order (a stable sort). */
static int cmp_entry(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    int c = cmp_key(a, b);
    if (c)
        return c;
    if (a->time != b->time)
        return a->time > b->time ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static void add_reason(pf_retention_decision *d, const char *fmt, const char *arg)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, fmt, arg);
    char *s = strdup(tmp);
    char **r = realloc(d->reasons, (d->n_reasons + 1) * sizeof *r);
    if (!s || !r) {
        fprintf(stderr, "permafrost: out of memory\n");
        abort();
    }
    r[d->n_reasons++] = s;
    d->reasons = r;
    d->keep = true;
}

static bool has_tag(const pf_retention_snapshot *s, const char *tag)
{
    for (size_t i = 0; i < s->n_tags; i++)
        if (s->tags[i] && strcmp(s->tags[i], tag) == 0)
            return true;
    return false;
}

/* Runs the policy over one group: g[0..n) sorted newest first. */
static void apply_group(const pf_retention_snapshot *snaps, const entry *g, size_t n,
                        const pf_retention_policy *p, int64_t now, pf_retention_decision *dec)
{
    int left[NRULES] = {p->keep_last,   p->keep_hourly,  p->keep_daily,
                        p->keep_weekly, p->keep_monthly, p->keep_yearly};
    int64_t last[NRULES] = {0};
    bool have_last[NRULES] = {false};

    bool within_on = !duration_zero(&p->keep_within);
    bool have_cutoff = false;
    int64_t cutoff = 0;
    char within_str[96] = "";
    if (within_on) {
        pf_retention_format_duration(&p->keep_within, within_str, sizeof within_str);
        /* The newest snapshot that is not in the future. With none, every snapshot counts
         * as within (restic compares with the zero time). */
        bool found = false;
        int64_t latest = 0;
        for (size_t i = 0; i < n; i++)
            if (g[i].time < now && (!found || g[i].time > latest)) {
                latest = g[i].time;
                found = true;
            }
        if (found)
            have_cutoff = subtract_duration(latest, &p->keep_within, &cutoff);
    }

    for (size_t r = 0; r < n; r++) {
        const pf_retention_snapshot *s = &snaps[g[r].idx];
        pf_retention_decision *d = &dec[g[r].idx];
        d->rank = r;

        for (size_t t = 0; t < p->n_keep_tags; t++)
            if (has_tag(s, p->keep_tags[t]))
                add_reason(d, "tag %s", p->keep_tags[t]);

        if (within_on && (!have_cutoff || s->time > cutoff))
            add_reason(d, "within %s", within_str);

        struct tm tm = {0};
        time_t t = (time_t)s->time;
        bool have_tm = localtime_r(&t, &tm) != NULL;
        for (int rule = 0; rule < NRULES; rule++) {
            if (left[rule] == 0)
                continue;
            /* A time the C library cannot break down gets a bucket of its own. */
            int64_t v =
                (have_tm || rule == RULE_LAST) ? bucket(rule, &tm, r) : INT64_MIN + (int64_t)r;
            bool oldest = r + 1 == n;
            bool fresh = !have_last[rule] || v != last[rule];
            if (!fresh && !oldest)
                continue;
            if (fresh)
                add_reason(d, "%s", rule_reason[rule]);
            else
                add_reason(d, "oldest %s", rule_reason[rule]);
            last[rule] = v;
            have_last[rule] = true;
            if (left[rule] > 0)
                left[rule]--;
        }
    }
}

void pf_retention_result_free(pf_retention_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n && r->d; i++) {
        for (size_t j = 0; j < r->d[i].n_reasons; j++)
            free(r->d[i].reasons[j]);
        free(r->d[i].reasons);
    }
    free(r->d);
    *r = (pf_retention_result)PF_RETENTION_RESULT_INIT;
}

int pf_retention_apply(const pf_retention_snapshot *snaps, size_t n, const pf_retention_policy *p,
                       int64_t now, pf_retention_result *out, pf_err *err)
{
    *out = (pf_retention_result)PF_RETENTION_RESULT_INIT;
    if (pf_retention_policy_validate(p, err))
        return -1;
    if (n == 0)
        return 0;
    if (!snaps)
        return pf_err_set(err, PF_EUSAGE, "retention: no snapshot list");

    entry *e = calloc(n, sizeof *e);
    pf_retention_decision *dec = calloc(n, sizeof *dec);
    if (!e || !dec) {
        free(e);
        free(dec);
        return pf_err_set(err, PF_EGENERIC, "retention: out of memory for %zu snapshots", n);
    }
    for (size_t i = 0; i < n; i++) {
        e[i].idx = i;
        e[i].time = snaps[i].time;
        e[i].host = "";
        e[i].kind = "";
        if ((p->group_by & PF_RETENTION_GROUP_HOST) && snaps[i].host)
            e[i].host = snaps[i].host;
        if ((p->group_by & PF_RETENTION_GROUP_KIND) && snaps[i].kind)
            e[i].kind = snaps[i].kind;
        if (((p->group_by & PF_RETENTION_GROUP_TAGS) &&
             set_copy(&e[i].tags, snaps[i].tags, snaps[i].n_tags)) ||
            ((p->group_by & PF_RETENTION_GROUP_PATHS) &&
             set_copy(&e[i].paths, snaps[i].paths, snaps[i].n_paths))) {
            entries_free(e, i + 1);
            free(dec);
            return pf_err_set(err, PF_EGENERIC, "retention: out of memory");
        }
    }
    qsort(e, n, sizeof *e, cmp_entry);

    size_t groups = 0;
    for (size_t start = 0; start < n;) {
        size_t end = start + 1;
        while (end < n && cmp_key(&e[start], &e[end]) == 0)
            end++;
        for (size_t i = start; i < end; i++)
            dec[e[i].idx].group = groups;
        apply_group(snaps, e + start, end - start, p, now, dec);
        groups++;
        start = end;
    }

    out->d = dec;
    out->n = n;
    out->n_groups = groups;
    for (size_t i = 0; i < n; i++) {
        if (dec[i].keep)
            out->n_keep++;
        else
            out->n_remove++;
    }
    entries_free(e, n);
    return 0;
}

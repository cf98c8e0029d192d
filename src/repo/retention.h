/* Retention: which snapshots `forget` keeps, with the semantics of restic's `forget`.
 *
 * Pure: no I/O. Calendar buckets (hour, day, ISO week, month, year) and keep-within are
 * evaluated in the process's local time zone (localtime_r/mktime, so the TZ environment
 * variable applies; tests set TZ and call tzset()).
 *
 * Groups: snapshots are compared only with snapshots of the same group. By default a group
 * is one host, one set of paths and one kind, as restic groups by host and paths: daily
 * backups of /srv/a and of /srv/b never push each other out, nor does a partial
 * `--only db` snapshot push the day's whole-server snapshot out of keep-daily.
 *
 * The algorithm, per group of snapshots (see group_by):
 *   1. Sort the group newest first (snapshots with equal times keep their input order).
 *   2. Walk it from newest to oldest. A snapshot is kept when any of these holds:
 *      - it carries one of keep_tags                        reason "tag <name>"
 *      - its time is strictly after (latest - keep_within)  reason "within <duration>"
 *        where latest is the group's newest snapshot that is not after `now`
 *      - for each of last, hourly, daily, weekly, monthly, yearly whose count is not used
 *        up (N > 0 left, or -1 = unlimited): its bucket value differs from the bucket of
 *        the previous snapshot kept by that rule            reason "daily snapshot", ...
 *        Keeping it uses one count. Buckets count snapshots that exist, not calendar
 *        periods: with daily 7 and a week-long gap, the 7 most recent days that have a
 *        snapshot are kept. "last" gives every snapshot its own bucket.
 *      - the oldest snapshot of the group, for every rule above with counts left, even in
 *        an already used bucket                             reason "oldest daily snapshot"
 *   Reasons of a kept snapshot are listed in that order: tags, within, then the buckets
 *   last, hourly, daily, weekly, monthly, yearly.
 */
#ifndef PF_RETENTION_H
#define PF_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

/* A count meaning "every bucket", as restic's -1. */
#define PF_RETENTION_UNLIMITED (-1)
/* Largest number accepted in a count or in one field of a duration. */
#define PF_RETENTION_MAX_NUMBER 1000000

/* Calendar duration: years, months, days, hours (restic's "1y2m3d4h"). All >= 0.
 * Subtracting it from a time goes back y years, m months and d days on the local
 * calendar (keeping the wall-clock time, normalising e.g. 31 March - 1 month to 3 March),
 * then h hours of real time. */
typedef struct pf_retention_duration {
    int years;
    int months;
    int days;
    int hours;
} pf_retention_duration;

/* group_by bits; 0 puts every snapshot in one group. */
#define PF_RETENTION_GROUP_HOST 1u
#define PF_RETENTION_GROUP_TAGS 2u
#define PF_RETENTION_GROUP_PATHS 4u /* the set of paths, in any order */
#define PF_RETENTION_GROUP_KIND 8u  /* "paths", "mastodon", "mastodon-partial", ... */
#define PF_RETENTION_GROUP_ALL                                                                     \
    (PF_RETENTION_GROUP_HOST | PF_RETENTION_GROUP_TAGS | PF_RETENTION_GROUP_PATHS |                \
     PF_RETENTION_GROUP_KIND)
#define PF_RETENTION_GROUP_DEFAULT                                                                 \
    (PF_RETENTION_GROUP_HOST | PF_RETENTION_GROUP_PATHS | PF_RETENTION_GROUP_KIND)

typedef struct pf_retention_policy {
    int keep_last; /* each: 0 = rule off, N > 0, or PF_RETENTION_UNLIMITED */
    int keep_hourly;
    int keep_daily;
    int keep_weekly;
    int keep_monthly;
    int keep_yearly;
    pf_retention_duration keep_within; /* all zero = rule off */
    const char *const *keep_tags;      /* borrowed; a snapshot with any of them is kept */
    size_t n_keep_tags;
    unsigned group_by; /* PF_RETENTION_GROUP_* bits */
} pf_retention_policy;

/* Every rule off, grouped by host, paths and kind (the default). */
#define PF_RETENTION_POLICY_INIT                                                                   \
    {                                                                                              \
        0, 0, 0, 0, 0, 0, {0, 0, 0, 0}, NULL, 0, PF_RETENTION_GROUP_DEFAULT                        \
    }

/* One snapshot as the policy sees it. Everything is borrowed. host and kind may be NULL
 * (= ""). */
typedef struct pf_retention_snapshot {
    const char *id;
    int64_t time; /* Unix seconds */
    const char *host;
    const char *const *tags;
    size_t n_tags;
    const char *const *paths;
    size_t n_paths;
    const char *kind;
} pf_retention_snapshot;

typedef struct pf_retention_decision {
    bool keep;
    size_t group;   /* 0-based; groups are numbered in (host, kind, sorted paths, sorted
                       tags) order, over the fields grouped by */
    size_t rank;    /* position in its group, 0 = newest */
    char **reasons; /* why it is kept (empty when removed); owned by the result */
    size_t n_reasons;
} pf_retention_decision;

typedef struct pf_retention_result {
    pf_retention_decision *d; /* one per input snapshot, in input order */
    size_t n;
    size_t n_groups;
    size_t n_keep;
    size_t n_remove;
} pf_retention_result;

#define PF_RETENTION_RESULT_INIT                                                                   \
    {                                                                                              \
        NULL, 0, 0, 0, 0                                                                           \
    }

/* Parses restic's duration syntax: one or more <number><unit>, unit y (years), m (months),
 * d (days) or h (hours), e.g. "7d", "1y6m", "2d12h". Surrounding blanks are ignored, unit
 * letters may be upper case. Refused, with a message saying why: an empty string, a number
 * without a unit, an unknown unit, a negative number, a unit given twice, a number above
 * PF_RETENTION_MAX_NUMBER. "0d" is valid and means "rule off". Returns 0, or -1 with err
 * set (PF_EUSAGE) and *d untouched. */
int pf_retention_parse_duration(const char *s, pf_retention_duration *d, pf_err *err);

/* Writes d as restic prints it ("1y2m3d4h", zero fields left out; "0h" when all are
 * zero) into out (NUL-terminated, truncated to cap). Returns the length it needed. */
size_t pf_retention_format_duration(const pf_retention_duration *d, char *out, size_t cap);

/* Parses a keep count: a decimal number 0..PF_RETENTION_MAX_NUMBER, or "-1", "all" or
 * "unlimited" for PF_RETENTION_UNLIMITED. Returns 0, or -1 with err set (PF_EUSAGE). */
int pf_retention_parse_count(const char *s, int *n, pf_err *err);

/* Parses a group-by value: a comma-separated combination of "host", "paths", "tags" and
 * "kind" ("hosts", "path", "tag", "kinds" accepted), or "" / "none" for a single group.
 * Returns 0, or -1 with err set (PF_EUSAGE). */
int pf_retention_parse_group_by(const char *s, unsigned *group_by, pf_err *err);

/* True when no rule is on: such a policy would remove every snapshot. */
bool pf_retention_policy_empty(const pf_retention_policy *p);

/* Checks a policy built by hand or from options: counts are >= -1 and not above
 * PF_RETENTION_MAX_NUMBER, duration fields are in 0..PF_RETENTION_MAX_NUMBER, tags are
 * non-empty, group_by has only known bits, and at least one rule is on ("no policy given:
 * would remove everything"). Messages name the option ("keep-daily: ..."). Returns 0, or
 * -1 with err set (PF_EUSAGE). */
int pf_retention_policy_validate(const pf_retention_policy *p, pf_err *err);

/* Appends a one-line English description of the policy to out, e.g.
 * "keep 7 daily, 5 weekly, 12 monthly snapshots and all snapshots within 2d of the newest,
 * grouped by host, paths and kind". */
void pf_retention_policy_describe(const pf_retention_policy *p, pf_buf *out);

/* Applies policy p to snaps[0..n) and fills *out (which must be PF_RETENTION_RESULT_INIT
 * or freed). `now` is the current time in Unix seconds: for keep_within, snapshots that are
 * not before it are not taken as the newest (as restic does with clock skew); pass
 * time(NULL). The policy is validated first; an empty policy is refused. n may be 0.
 * Returns 0, or -1 with err set and *out left empty. */
int pf_retention_apply(const pf_retention_snapshot *snaps, size_t n, const pf_retention_policy *p,
                       int64_t now, pf_retention_result *out, pf_err *err);

/* Frees what pf_retention_apply allocated and leaves *r empty. NULL is fine. */
void pf_retention_result_free(pf_retention_result *r);

#endif

#include "cli/conf.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "repo/prune.h"
#include "repo/retention.h"

/* Keep the groups in the order of docs/permafrost.conf.5 and contrib/permafrost.conf. */
const pf_conf_key pf_conf_keys[] = {
    /* the repository */
    {"repository", PF_CONF_REPO, 0, 0, "--repo, $PERMAFROST_REPO",
     "the repository: a directory, sftp:// or ssh://USER@HOST[:PORT]/PATH, "
     "s3:https://ENDPOINT/BUCKET"},
    {"password_file", PF_CONF_PATH, 0, 0, "$PERMAFROST_PASSWORD_FILE",
     "file whose first line is the repository passphrase"},
    {"ssh_key", PF_CONF_PATH, 0, 0, "--ssh-key", "SSH private key for an sftp:// repository"},
    {"ssh_command", PF_CONF_TEXT, 0, 0, "$PERMAFROST_SSH",
     "ssh client command line for an ssh:// repository (default ssh)"},
    {"s3_region", PF_CONF_TEXT, 0, 0, "$AWS_DEFAULT_REGION, $AWS_REGION",
     "S3 region the requests are signed for (default us-east-1)"},
    {"s3_virtual_host", PF_CONF_BOOL, 0, 0, "",
     "S3 bucket in the host name (virtual-host style) instead of the path"},
    {"connections", PF_CONF_INT, 1, 64, "--connections",
     "parallel connections to a remote repository (default 4)"},
    {"lock_wait", PF_CONF_SECONDS, 0, 0, "$PERMAFROST_LOCK_WAIT",
     "seconds to wait for a conflicting lock before giving up (default 30)"},
    /* the Mastodon server */
    {"live", PF_CONF_PATH, 0, 0, "the DIR of --live",
     "Mastodon's live/ directory; plain 'permafrost backup' then backs up the whole server"},
    {"exclude_cache", PF_CONF_BOOL, 0, 0, "backup --live --exclude-cache",
     "leave media cache/ (remote accounts' media, fetched again on demand) out"},
    {"media_from_s3", PF_CONF_BOOL, 0, 0, "backup --live --media-from-s3",
     "with S3_ENABLED=true, mirror the media bucket into the snapshot (read with the keys of "
     ".env.production, incrementally by ETag and size)"},
    {"pg_fresh_dump", PF_CONF_BOOL, 0, 0, "backup --live --fresh-dump",
     "always run pg_dump, even when the database has not changed since the last backup"},
    {"pg_dump_jobs", PF_CONF_INT, 1, 64, "backup --live --pg-dump-jobs",
     "parallel pg_dump -Fd -j N for a big database, into TMPDIR (default 1: one "
     "stream, nothing on disk)"},
    {"host", PF_CONF_BOOL, 0, 0, "",
     "keep the machine's files (/etc/letsencrypt, the nginx site, the mastodon-* units, the "
     "crontab) in backup --live (default yes)"},
    {"host_exclude", PF_CONF_TEXT, 0, 0, "",
     "space-separated globs of host paths backup --live leaves out, e.g. /etc/nginx/*"},
    {"host_root", PF_CONF_PATH, 0, 0, "",
     "directory the host files are read from and restored below (default /)"},
    {"pg_host", PF_CONF_TEXT, 0, 0, "DB_HOST of .env.production",
     "PostgreSQL host or socket directory that backup --live connects to"},
    {"pg_port", PF_CONF_INT, 1, 65535, "DB_PORT of .env.production",
     "PostgreSQL port that backup --live connects to"},
    {"pg_user", PF_CONF_TEXT, 0, 0, "DB_USER of .env.production",
     "PostgreSQL role that backup --live dumps the database as"},
    {"pg_password", PF_CONF_TEXT, 0, 0, "DB_PASS of .env.production",
     "password of pg_user for backup --live"},
    {"postgres", PF_CONF_TEXT, 0, 0, "backup --live --postgres",
     "the database as logical (pg_dump, the default), physical (a base backup, for "
     "point-in-time restore from the WAL archive) or both"},
    {"pg_physical_conninfo", PF_CONF_TEXT, 0, 0, "",
     "libpq connection string of a role with REPLICATION for the base backup (default: "
     "backup --live's connection)"},
    {"pg_physical_target", PF_CONF_PATH, 0, 0, "restore --live --pg-physical-target",
     "data directory a point-in-time restore writes (default "
     "/var/lib/postgresql/<major>/main)"},
    {"redis_host", PF_CONF_TEXT, 0, 0, "REDIS_HOST of .env.production",
     "Redis host that backup --live takes the snapshot from"},
    {"redis_port", PF_CONF_INT, 1, 65535, "REDIS_PORT of .env.production",
     "Redis port that backup --live connects to"},
    {"redis_password", PF_CONF_TEXT, 0, 0, "REDIS_PASSWORD of .env.production",
     "Redis password for backup --live"},
    {"restore_pg_host", PF_CONF_TEXT, 0, 0, "restore --live --pg-host",
     "PostgreSQL host or socket directory that restore --live restores into"},
    {"systemd_unit_path", PF_CONF_TEXT, 0, 0, "",
     "colon-separated directories searched for Mastodon's systemd units (default "
     "/etc/systemd/system:/lib/systemd/system)"},
    {"pgbouncer_ini", PF_CONF_PATH, 0, 0, "",
     "pgbouncer's configuration, read to find PostgreSQL behind it (default "
     "/etc/pgbouncer/pgbouncer.ini)"},
    /* retention: forget and prune */
    {"keep_last", PF_CONF_COUNT, 0, 0, "forget --keep-last", "keep the N newest snapshots"},
    {"keep_hourly", PF_CONF_COUNT, 0, 0, "forget --keep-hourly",
     "keep the newest snapshot of each of the last N hours"},
    {"keep_daily", PF_CONF_COUNT, 0, 0, "forget --keep-daily",
     "keep the newest snapshot of each of the last N days"},
    {"keep_weekly", PF_CONF_COUNT, 0, 0, "forget --keep-weekly",
     "keep the newest snapshot of each of the last N weeks"},
    {"keep_monthly", PF_CONF_COUNT, 0, 0, "forget --keep-monthly",
     "keep the newest snapshot of each of the last N months"},
    {"keep_yearly", PF_CONF_COUNT, 0, 0, "forget --keep-yearly",
     "keep the newest snapshot of each of the last N years"},
    {"keep_within", PF_CONF_DURATION, 0, 0, "forget --keep-within",
     "keep every snapshot younger than this, e.g. 14d or 1y6m"},
    {"keep_tag", PF_CONF_TEXT, 0, 0, "forget --keep-tag", "keep every snapshot with this tag"},
    {"max_unused", PF_CONF_PERCENT, 0, 0, "prune --max-unused",
     "percentage of unused data prune tolerates in a pack before rewriting it (default 10)"},
    /* a second repository: copy */
    {"copy_to", PF_CONF_REPO, 0, 0, "copy --to", "the repository that copy copies into"},
    {"copy_password_file", PF_CONF_PATH, 0, 0, "$PERMAFROST_TO_PASSWORD_FILE",
     "file whose first line is the passphrase of copy_to"},
    /* monitoring */
    {"ping_url", PF_CONF_URL, 0, 0, "--ping (for backup)",
     "healthchecks-style URL pinged when backup starts (/start), succeeds, fails (/fail)"},
    {"check_ping_url", PF_CONF_URL, 0, 0, "--ping (for check)", "the same, for check"},
    {"drill_ping_url", PF_CONF_URL, 0, 0, "--ping (for drill)", "the same, for drill"},
    {"notify_url", PF_CONF_URL, 0, 0, "",
     "URL (ntfy topic or webhook) that gets a POSTed message when a job fails"},
    {"notify_success", PF_CONF_BOOL, 0, 0, "", "notify_url also hears of jobs that succeed"},
    {"metrics_file", PF_CONF_PATH, 0, 0, "",
     "Prometheus textfile (node_exporter's textfile collector) written after every job"},
    /* drills */
    {"drill_pg_bindir", PF_CONF_PATH, 0, 0, "drill --pg-bindir",
     "PostgreSQL server binaries for the drill's scratch cluster (default: the newest installed)"},
};
const size_t pf_conf_nkeys = sizeof pf_conf_keys / sizeof *pf_conf_keys;

const pf_conf_key *pf_conf_find(const char *name)
{
    for (size_t i = 0; i < pf_conf_nkeys; i++)
        if (!strcmp(pf_conf_keys[i].name, name))
            return &pf_conf_keys[i];
    return NULL;
}

static int fold(int c)
{
    return c == '-' ? '_' : tolower(c);
}

/* Optimal string alignment distance: insertions, deletions, substitutions and swaps of
 * two neighbours each cost 1, so "keep_daly" and "kepe_daily" are both one step away. */
static size_t distance(const char *a, const char *b)
{
    enum { MAX = 64 };
    size_t n = strlen(a), m = strlen(b);
    if (n >= MAX || m >= MAX)
        return (size_t)-1;
    size_t d[MAX][MAX];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t cost = fold(a[i - 1]) != fold(b[j - 1]);
            size_t best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && fold(a[i - 1]) == fold(b[j - 2]) &&
                fold(a[i - 2]) == fold(b[j - 1]) && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

const char *pf_conf_nearest(const char *name)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < pf_conf_nkeys; i++) {
        size_t d = distance(name, pf_conf_keys[i].name);
        if (d < best_d) {
            best_d = d;
            best = pf_conf_keys[i].name;
        }
    }
    /* Up to a third of the word wrong (at least 2 edits): beyond that a suggestion is a
     * guess that misleads more than it helps. */
    size_t limit = strlen(name) / 3;
    if (limit < 2)
        limit = 2;
    return best && best_d <= limit && best_d < strlen(name) ? best : NULL;
}

const char *pf_conf_type_name(pf_conf_type t)
{
    switch (t) {
    case PF_CONF_TEXT:
        return "text";
    case PF_CONF_PATH:
        return "path";
    case PF_CONF_REPO:
        return "repository";
    case PF_CONF_BOOL:
        return "yes/no";
    case PF_CONF_INT:
        return "integer";
    case PF_CONF_SECONDS:
        return "seconds";
    case PF_CONF_COUNT:
        return "count";
    case PF_CONF_DURATION:
        return "duration";
    case PF_CONF_PERCENT:
        return "percent";
    case PF_CONF_URL:
        return "URL";
    }
    return "?";
}

static const char *const yes_words[] = {"true", "yes", "1"};
static const char *const no_words[] = {"false", "no", "0"};

bool pf_conf_true(const char *value)
{
    for (size_t i = 0; i < sizeof yes_words / sizeof *yes_words; i++)
        if (value && !strcmp(value, yes_words[i]))
            return true;
    return false;
}

static int why_set(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int why_set(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return -1;
}

int pf_conf_check_value(const pf_conf_key *k, const char *v, char *why, size_t n)
{
    if (!*v)
        return why_set(why, n, "empty value: give one or remove the line");
    size_t len = strlen(v);
    /* inih keeps quotes: repository = "/srv/backup" names a directory with quotes in it. */
    if ((k->type == PF_CONF_PATH || k->type == PF_CONF_REPO) && len >= 2 &&
        ((v[0] == '"' && v[len - 1] == '"') || (v[0] == '\'' && v[len - 1] == '\'')))
        return why_set(why, n, "%s: quotes would be part of the value; remove them", v);
    pf_err err = {0};
    char *end;
    switch (k->type) {
    case PF_CONF_TEXT:
    case PF_CONF_PATH:
        return 0;
    case PF_CONF_URL:
        if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
            return why_set(why, n, "\"%s\" is not an http:// or https:// URL", v);
        return 0;
    case PF_CONF_REPO:
        if (pf_cli_check_repo_url(v, &err))
            return why_set(why, n, "%s", err.msg);
        return 0;
    case PF_CONF_BOOL:
        if (pf_conf_true(v))
            return 0;
        for (size_t i = 0; i < sizeof no_words / sizeof *no_words; i++)
            if (!strcmp(v, no_words[i]))
                return 0;
        return why_set(why, n, "\"%s\" is not a yes/no value: write true or false (yes/no, 1/0)",
                       v);
    case PF_CONF_INT: {
        errno = 0;
        long x = strtol(v, &end, 10);
        if (end == v || *end || errno || x < k->min || x > k->max)
            return why_set(why, n, "\"%s\" is not a whole number from %d to %d", v, k->min, k->max);
        return 0;
    }
    case PF_CONF_SECONDS: {
        errno = 0;
        double x = strtod(v, &end);
        if (end == v || *end || errno || !(x >= 0) || x > 1e9)
            return why_set(why, n, "\"%s\" is not a number of seconds (such as 30 or 2.5)", v);
        return 0;
    }
    case PF_CONF_COUNT: {
        int x;
        if (pf_retention_parse_count(v, &x, &err))
            return why_set(why, n, "%s", err.msg);
        return 0;
    }
    case PF_CONF_DURATION: {
        pf_retention_duration d;
        if (pf_retention_parse_duration(v, &d, &err))
            return why_set(why, n, "%s", err.msg);
        return 0;
    }
    case PF_CONF_PERCENT: {
        double x;
        if (pf_prune_parse_max_unused(v, &x))
            return why_set(why, n, "\"%s\" is not a percentage from 0 to 100", v);
        return 0;
    }
    }
    return why_set(why, n, "no check for this type");
}

/* ---- reading a file ---- */

typedef struct reader {
    FILE *f;
    const char *path;
    pf_conf_file *out;
    int line;       /* the line the last chunk handed to inih belongs to */
    int long_line;  /* the last line too long for inih's buffer */
    int read_errno; /* a read error ends the file early: not a silent empty config */
} reader;

static void problem(reader *r, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(reader *r, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *p = NULL;
    if (asprintf(&p, "%s:%d: %s", r->path, line, msg) < 0)
        return;
    pf_conf_file *f = r->out;
    pf_conf_problem *np = realloc(f->problems, (f->nproblems + 1) * sizeof *np);
    if (!np) {
        free(p);
        return;
    }
    f->problems = np;
    /* In line order: inih names its syntax error only after the whole file. */
    size_t at = f->nproblems;
    while (at > 0 && f->problems[at - 1].line > line) {
        f->problems[at] = f->problems[at - 1];
        at--;
    }
    f->problems[at] = (pf_conf_problem){.line = line, .text = p};
    f->nproblems++;
}

/* fgets with a line count: inih calls the handler for a line before it reads the next,
 * so at handler time `line` is the number of the line being handled. The rest of a line
 * longer than inih's buffer is skipped, so that inih's own count stays the same as ours
 * and the tail is not parsed as a line of its own. */
static char *read_line(char *str, int num, void *stream)
{
    reader *r = stream;
    errno = 0;
    char *s = fgets(str, num, r->f);
    if (!s) {
        if (ferror(r->f))
            r->read_errno = errno ? errno : EIO;
        return NULL;
    }
    r->line++;
    size_t n = strlen(s);
    if (n > 0 && s[n - 1] != '\n' && !feof(r->f)) {
        int c;
        while ((c = getc(r->f)) != EOF && c != '\n')
            ;
        const char *t = s + strspn(s, " \t");
        if (*t != '#' && *t != ';') {
            r->long_line = r->line;
            problem(r, r->line, "line longer than %d characters", num - 2);
        }
    }
    return s;
}

static int entry(void *user, const char *section, const char *name, const char *value)
{
    (void)section; /* sections are allowed and mean nothing */
    reader *r = user;
    pf_conf_file *f = r->out;
    if (r->long_line == r->line)
        return 1; /* already reported; its value is cut short */
    const pf_conf_key *k = pf_conf_find(name);
    if (!k) {
        const char *near = pf_conf_nearest(name);
        if (near)
            problem(r, r->line, "unknown key \"%s\": did you mean %s?", name, near);
        else
            problem(r, r->line,
                    "unknown key \"%s\" (the keys: 'permafrost config keys', permafrost.conf(5))",
                    name);
        return 1;
    }
    for (size_t i = 0; i < f->nentries; i++)
        if (!strcmp(f->entries[i].key, name)) {
            problem(r, r->line, "%s is set again (first on line %d): keep one of them", name,
                    f->entries[i].line);
            return 1;
        }
    char why[1024];
    if (pf_conf_check_value(k, value, why, sizeof why)) {
        problem(r, r->line, "%s (%s): %s", name, pf_conf_type_name(k->type), why);
        return 1;
    }
    pf_conf_entry *e = realloc(f->entries, (f->nentries + 1) * sizeof *e);
    if (!e)
        return 0;
    f->entries = e;
    e[f->nentries].key = strdup(name);
    e[f->nentries].value = strdup(value);
    e[f->nentries].line = r->line;
    if (!e[f->nentries].key || !e[f->nentries].value) {
        free(e[f->nentries].key);
        free(e[f->nentries].value);
        return 0;
    }
    f->nentries++;
    return 1;
}

int pf_conf_read(const char *path, pf_conf_file *f, pf_err *err)
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return pf_err_sys(err, PF_EUSAGE, "cannot read config file %s", path);
    /* An indented line is a line of its own, not the continuation of the one above
     * (inih's default): "  keep_daily = 7" must not become part of another value. */
    ini_allow_multiline = false;
    reader r = {.f = fp, .path = path, .out = f};
    int first_bad = ini_parse_stream(read_line, &r, entry, &r);
    fclose(fp);
    if (r.read_errno) {
        pf_conf_file_free(f);
        errno = r.read_errno;
        return pf_err_sys(err, PF_EUSAGE, "cannot read config file %s", path);
    }
    if (first_bad < 0) {
        pf_conf_file_free(f);
        return pf_err_set(err, PF_EGENERIC, "config file %s: out of memory", path);
    }
    /* inih also counts a handler's refusal (out of memory) as a bad line. */
    if (first_bad > 0 && first_bad != r.long_line)
        problem(&r, first_bad, "not a 'key = value' line (comments start with # or ;)");
    return 0;
}

void pf_conf_file_free(pf_conf_file *f)
{
    for (size_t i = 0; i < f->nentries; i++) {
        free(f->entries[i].key);
        free(f->entries[i].value);
    }
    free(f->entries);
    for (size_t i = 0; i < f->nproblems; i++)
        free(f->problems[i].text);
    free(f->problems);
    memset(f, 0, sizeof *f);
}

#include "cli/monitor.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/buf.h"

pf_run_report pf_monitor_report;

void pf_run_report_init(pf_run_report *r, const char *command, double started)
{
    memset(r, 0, sizeof *r);
    r->command = command;
    r->started = started;
    r->finished = started;
    r->files = r->bytes_read = r->bytes_added = r->bytes_stored = r->repo_bytes = -1;
}

/* ---- the log tail ---- */

static char tail_lines[PF_MONITOR_TAIL_LINES][512];
static size_t tail_next, tail_count;

void pf_monitor_log_line(const char *line)
{
    snprintf(tail_lines[tail_next], sizeof tail_lines[0], "%s", line);
    tail_next = (tail_next + 1) % PF_MONITOR_TAIL_LINES;
    if (tail_count < PF_MONITOR_TAIL_LINES)
        tail_count++;
}

void pf_monitor_log_tail(char *out, size_t n)
{
    size_t used = 0;
    if (n == 0)
        return;
    out[0] = '\0';
    size_t first = (tail_next + PF_MONITOR_TAIL_LINES - tail_count) % PF_MONITOR_TAIL_LINES;
    for (size_t i = 0; i < tail_count && used + 1 < n; i++) {
        int w =
            snprintf(out + used, n - used, "%s\n", tail_lines[(first + i) % PF_MONITOR_TAIL_LINES]);
        if (w < 0)
            break;
        used += (size_t)w < n - used ? (size_t)w : n - used - 1;
    }
}

/* ---- pings and notifications ---- */

int pf_ping_url(const char *base, enum pf_ping_event ev, char *out, size_t n)
{
    size_t len = strlen(base);
    if (len > 0 && base[len - 1] == '/')
        len--;
    const char *suffix = ev == PF_PING_START ? "/start" : ev == PF_PING_FAIL ? "/fail" : "";
    int w = snprintf(out, n, "%.*s%s", (int)len, base, suffix);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

static size_t discard_body(char *p, size_t size, size_t nmemb, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * nmemb;
}

/* One POST of body to url with the given extra headers; the server's answer is read and
 * dropped. Redirects are not followed: a ping URL that moved is a configuration to fix. */
static int post_text(const char *url, struct curl_slist *headers, const char *body, long timeout_s,
                     pf_err *err)
{
    CURL *c = curl_easy_init();
    if (!c)
        return pf_err_set(err, PF_EGENERIC, "%s: cannot start an HTTP request", url);
    char curl_msg[CURL_ERROR_SIZE] = "";
    headers = curl_slist_append(headers, "Content-Type: text/plain; charset=utf-8");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "permafrost");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_msg);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK)
        return pf_err_set(err, PF_ECONN, "%s: %s", url,
                          curl_msg[0] ? curl_msg : curl_easy_strerror(rc));
    if (status >= 400)
        return pf_err_set(err, PF_EIO, "%s: the server answered HTTP %ld", url, status);
    return 0;
}

int pf_ping_send(const char *base, enum pf_ping_event ev, const char *body, long timeout_s,
                 pf_err *err)
{
    char url[2048];
    if (pf_ping_url(base, ev, url, sizeof url) < 0)
        return pf_err_set(err, PF_EUSAGE, "ping URL too long (at most %zu bytes)", sizeof url - 8);
    return post_text(url, NULL, body, timeout_s, err);
}

int pf_notify_send(const char *url, const char *title, const char *body, long timeout_s,
                   pf_err *err)
{
    struct curl_slist *h = NULL;
    char line[512];
    if (title) {
        /* A header value ends at a line break: keep the title on one line. */
        snprintf(line, sizeof line, "Title: %s", title);
        line[strcspn(line, "\r\n")] = '\0';
        h = curl_slist_append(h, line);
    }
    return post_text(url, h, body, timeout_s, err);
}

/* ---- the Prometheus textfile ---- */

enum { SCOPE_COMMAND, SCOPE_COMPONENT, SCOPE_GLOBAL };

static const struct family {
    const char *name, *type, *help;
    int scope;
} families[] = {
    {"permafrost_last_run_timestamp_seconds", "gauge", "When the command last finished.",
     SCOPE_COMMAND},
    {"permafrost_last_success_timestamp_seconds", "gauge",
     "When the command last finished with exit code 0.", SCOPE_COMMAND},
    {"permafrost_last_exit_code", "gauge", "The exit code of the command's last run.",
     SCOPE_COMMAND},
    {"permafrost_last_duration_seconds", "gauge", "How long the command's last run took.",
     SCOPE_COMMAND},
    {"permafrost_last_files", "gauge", "Files in the last run's snapshot.", SCOPE_COMMAND},
    {"permafrost_last_read_bytes", "gauge", "Bytes read from the sources by the last run.",
     SCOPE_COMMAND},
    {"permafrost_last_added_bytes", "gauge",
     "Bytes of new data (after deduplication) added by the last run.", SCOPE_COMMAND},
    {"permafrost_last_stored_bytes", "gauge",
     "Bytes written to the repository by the last run (compressed and encrypted).", SCOPE_COMMAND},
    {"permafrost_last_component_success", "gauge",
     "1 when the component succeeded in the command's last run, else 0.", SCOPE_COMPONENT},
    {"permafrost_repository_size_bytes", "gauge", "Bytes stored in the repository.", SCOPE_GLOBAL},
};
#define NFAMILIES (sizeof families / sizeof families[0])

static int family_of(const char *line, size_t len)
{
    size_t n = strcspn(line, "{ ");
    if (n > len)
        n = len;
    for (size_t i = 0; i < NFAMILIES; i++)
        if (strlen(families[i].name) == n && memcmp(families[i].name, line, n) == 0)
            return (int)i;
    return -1;
}

static void label_value(pf_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            pf_buf_printf(b, "\\%c", *v);
        else if (*v == '\n')
            pf_buf_append(b, "\\n", 2);
        else
            pf_buf_append(b, v, 1);
    }
}

/* Whether a sample line carries command="cmd" among its labels. */
static int line_has_command(const char *line, size_t len, const char *cmd)
{
    pf_buf want = PF_BUF_INIT;
    pf_buf_append(&want, "command=\"", 9);
    label_value(&want, cmd);
    pf_buf_append(&want, "\"", 1);
    int found = 0;
    const char *brace = memchr(line, '{', len);
    const char *close = brace ? memchr(brace, '}', len - (size_t)(brace - line)) : NULL;
    if (brace && close && want.len <= (size_t)(close - brace)) {
        for (const char *p = brace + 1; p + want.len <= close; p++)
            if (memcmp(p, want.data, want.len) == 0 && (p[-1] == '{' || p[-1] == ',')) {
                found = 1;
                break;
            }
    }
    pf_buf_free(&want);
    return found;
}

static void sample(pf_buf *b, int fam, const char *command, const char *component, double v)
{
    pf_buf_printf(b, "%s", families[fam].name);
    if (command) {
        pf_buf_append(b, "{command=\"", 10);
        label_value(b, command);
        pf_buf_append(b, "\"", 1);
        if (component) {
            pf_buf_append(b, ",component=\"", 12);
            label_value(b, component);
            pf_buf_append(b, "\"", 1);
        }
        pf_buf_append(b, "}", 1);
    }
    /* %.17g keeps a byte count or a timestamp exact; integers print without a fraction. */
    pf_buf_printf(b, " %.17g\n", v);
}

static int fam_index(const char *name)
{
    for (size_t i = 0; i < NFAMILIES; i++)
        if (strcmp(families[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* The file as the last run left it; a missing file is an empty one. The textfile is small:
 * more than 4 MiB is not one of ours. */
static int read_previous(const char *path, pf_buf *b, pf_err *err)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        return pf_err_sys(err, PF_EIO, "metrics file %s: cannot read it", path);
    }
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b->len + n > (4u << 20)) {
            fclose(f);
            return pf_err_set(err, PF_EUSAGE,
                              "metrics file %s: larger than 4 MiB, not a permafrost textfile: "
                              "point metrics_file at a file of its own",
                              path);
        }
        pf_buf_append(b, chunk, n);
    }
    int bad = ferror(f);
    fclose(f);
    return bad ? pf_err_sys(err, PF_EIO, "metrics file %s: cannot read it", path) : 0;
}

int pf_metrics_write(const char *path, const pf_run_report *r, pf_err *err)
{
    pf_buf old = PF_BUF_INIT, kept[NFAMILIES], fresh[NFAMILIES], out = PF_BUF_INIT;
    for (size_t i = 0; i < NFAMILIES; i++)
        kept[i] = fresh[i] = (pf_buf)PF_BUF_INIT;
    int rc = -1;

    if (read_previous(path, &old, err) < 0)
        goto out;
    const int last_success = fam_index("permafrost_last_success_timestamp_seconds");
    const int repo_size = fam_index("permafrost_repository_size_bytes");
    for (size_t at = 0; at < old.len;) {
        const char *line = (const char *)old.data + at;
        const char *nl = memchr(line, '\n', old.len - at);
        size_t len = nl ? (size_t)(nl - line) : old.len - at;
        at += len + 1;
        if (len == 0 || line[0] == '#')
            continue;
        int fam = family_of(line, len);
        if (fam < 0)
            continue; /* a metric this version no longer writes */
        int mine = line_has_command(line, len, r->command);
        if (families[fam].scope == SCOPE_GLOBAL)
            mine = r->repo_bytes >= 0;
        if (mine && !(fam == last_success && r->exit_code != 0))
            continue;
        pf_buf_append(&kept[fam], line, len);
        pf_buf_append(&kept[fam], "\n", 1);
    }

    sample(&fresh[fam_index("permafrost_last_run_timestamp_seconds")],
           fam_index("permafrost_last_run_timestamp_seconds"), r->command, NULL, r->finished);
    if (r->exit_code == 0)
        sample(&fresh[last_success], last_success, r->command, NULL, r->finished);
    sample(&fresh[fam_index("permafrost_last_exit_code")], fam_index("permafrost_last_exit_code"),
           r->command, NULL, r->exit_code);
    sample(&fresh[fam_index("permafrost_last_duration_seconds")],
           fam_index("permafrost_last_duration_seconds"), r->command, NULL,
           (double)(int64_t)((r->finished - r->started) * 1000) / 1000);
    const struct {
        const char *name;
        int64_t v;
    } counters[] = {{"permafrost_last_files", r->files},
                    {"permafrost_last_read_bytes", r->bytes_read},
                    {"permafrost_last_added_bytes", r->bytes_added},
                    {"permafrost_last_stored_bytes", r->bytes_stored}};
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        if (counters[i].v >= 0)
            sample(&fresh[fam_index(counters[i].name)], fam_index(counters[i].name), r->command,
                   NULL, (double)counters[i].v);
    int comp = fam_index("permafrost_last_component_success");
    for (size_t i = 0; i < r->ncomponents && i < sizeof r->components / sizeof r->components[0];
         i++)
        sample(&fresh[comp], comp, r->command, r->components[i].name, r->components[i].ok ? 1 : 0);
    if (r->repo_bytes >= 0)
        sample(&fresh[repo_size], repo_size, NULL, NULL, (double)r->repo_bytes);

    for (size_t i = 0; i < NFAMILIES; i++) {
        if (kept[i].len == 0 && fresh[i].len == 0)
            continue;
        pf_buf_printf(&out, "# HELP %s %s\n# TYPE %s %s\n", families[i].name, families[i].help,
                      families[i].name, families[i].type);
        pf_buf_append(&out, kept[i].data, kept[i].len);
        pf_buf_append(&out, fresh[i].data, fresh[i].len);
    }

    /* node_exporter reads every *.prom file of its directory: the temporary name does
     * not end in .prom, so a half-written file is never scraped. */
    if (pf_write_file_atomic(path, out.data, out.len, 0644, NULL, err)) {
        pf_err_prefix(err, "metrics file %s", path);
        goto out;
    }
    rc = 0;
out:
    pf_buf_free(&old);
    pf_buf_free(&out);
    for (size_t i = 0; i < NFAMILIES; i++) {
        pf_buf_free(&kept[i]);
        pf_buf_free(&fresh[i]);
    }
    return rc;
}

/* Pings, notifications and the Prometheus textfile (src/cli/monitor.c). The HTTP tests talk
 * to a one-request server on a loopback socket in a thread of this process. */
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/monitor.h"

static void test_ping_url(void **state)
{
    (void)state;
    char u[64];
    assert_int_equal(pf_ping_url("https://hc.example/abc/", PF_PING_START, u, sizeof u), 0);
    assert_string_equal(u, "https://hc.example/abc/start");
    assert_int_equal(pf_ping_url("https://hc.example/abc", PF_PING_SUCCESS, u, sizeof u), 0);
    assert_string_equal(u, "https://hc.example/abc");
    assert_int_equal(pf_ping_url("https://hc.example/abc", PF_PING_FAIL, u, sizeof u), 0);
    assert_string_equal(u, "https://hc.example/abc/fail");
    assert_int_equal(pf_ping_url("https://hc.example/abcdefghijklmnopqrstuvwxyz0123456789-long",
                                 PF_PING_FAIL, u, 20),
                     -1);
}

static void test_log_tail(void **state)
{
    (void)state;
    char line[32], tail[4096];
    for (int i = 0; i < PF_MONITOR_TAIL_LINES + 5; i++) {
        snprintf(line, sizeof line, "line %d", i);
        pf_monitor_log_line(line);
    }
    pf_monitor_log_tail(tail, sizeof tail);
    assert_non_null(strstr(tail, "line 5\nline 6\n"));
    assert_null(strstr(tail, "line 4\n"));
    assert_non_null(strstr(tail, "line 24\n"));
    pf_monitor_log_tail(tail, 10); /* truncated, still terminated */
    assert_true(strlen(tail) < 10);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_metrics_merge(void **state)
{
    (void)state;
    char dir[] = "/tmp/pf-metrics-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/permafrost.prom", dir);
    pf_err err = {0};

    pf_run_report r;
    pf_run_report_init(&r, "backup", 1000);
    r.finished = 1012.5;
    r.files = 42;
    r.bytes_read = 1 << 20;
    r.bytes_added = 4096;
    r.bytes_stored = 3000;
    r.repo_bytes = 123456789012;
    r.ncomponents = 2;
    r.components[0].name = "postgres";
    r.components[0].ok = 1;
    r.components[1].name = "media";
    r.components[1].ok = 1;
    assert_int_equal(pf_metrics_write(path, &r, &err), 0);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    char *t = slurp(path);
    assert_non_null(strstr(t, "# TYPE permafrost_last_success_timestamp_seconds gauge\n"));
    assert_non_null(
        strstr(t, "permafrost_last_success_timestamp_seconds{command=\"backup\"} 1012.5\n"));
    assert_non_null(strstr(t, "permafrost_last_duration_seconds{command=\"backup\"} 12.5\n"));
    assert_non_null(strstr(t, "permafrost_last_read_bytes{command=\"backup\"} 1048576\n"));
    assert_non_null(strstr(t, "permafrost_repository_size_bytes 123456789012\n"));
    assert_non_null(
        strstr(t, "permafrost_last_component_success{command=\"backup\",component=\"media\"} 1\n"));

    /* A failed check beside it: the backup's samples stay, the check has no success time. */
    pf_run_report c;
    pf_run_report_init(&c, "check", 2000);
    c.finished = 2003;
    c.exit_code = 4;
    assert_int_equal(pf_metrics_write(path, &c, &err), 0);
    t = slurp(path);
    assert_non_null(
        strstr(t, "permafrost_last_success_timestamp_seconds{command=\"backup\"} 1012.5\n"));
    assert_non_null(strstr(t, "permafrost_last_exit_code{command=\"check\"} 4\n"));
    assert_null(strstr(t, "permafrost_last_success_timestamp_seconds{command=\"check\"}"));
    assert_non_null(strstr(t, "permafrost_repository_size_bytes 123456789012\n"));
    /* Each family's HELP/TYPE once, with both commands' samples under it. */
    const char *h = strstr(t, "# HELP permafrost_last_exit_code ");
    assert_non_null(h);
    assert_null(strstr(h + 1, "# HELP permafrost_last_exit_code "));

    /* The backup now fails: its last success time stays the old one, its counters go. */
    pf_run_report_init(&r, "backup", 3000);
    r.finished = 3001;
    r.exit_code = 5;
    r.ncomponents = 1;
    r.components[0].name = "postgres";
    r.components[0].ok = 0;
    assert_int_equal(pf_metrics_write(path, &r, &err), 0);
    t = slurp(path);
    assert_non_null(
        strstr(t, "permafrost_last_success_timestamp_seconds{command=\"backup\"} 1012.5\n"));
    assert_non_null(strstr(t, "permafrost_last_run_timestamp_seconds{command=\"backup\"} 3001\n"));
    assert_non_null(strstr(t, "permafrost_last_exit_code{command=\"backup\"} 5\n"));
    assert_null(strstr(t, "permafrost_last_read_bytes{command=\"backup\"}"));
    assert_null(strstr(t, "component=\"media\""));
    assert_non_null(strstr(
        t, "permafrost_last_component_success{command=\"backup\",component=\"postgres\"} 0\n"));
    assert_non_null(strstr(t, "permafrost_last_exit_code{command=\"check\"} 4\n"));

    /* Nothing but the file is left in the directory (no temporary). */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 1", dir);
    assert_int_equal(system(cmd), 0);

    /* A path in a missing directory fails with the path named. */
    snprintf(path, sizeof path, "%s/missing/permafrost.prom", dir);
    assert_int_equal(pf_metrics_write(path, &r, &err), -1);
    assert_non_null(strstr(err.msg, "missing/permafrost.prom"));

    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- a one-request HTTP server ---- */

typedef struct http_once {
    int listen_fd;
    int status;
    char request[8192];
} http_once;

static void *serve_once(void *arg)
{
    http_once *h = arg;
    int c = accept(h->listen_fd, NULL, NULL);
    if (c < 0)
        return NULL;
    size_t used = 0;
    ssize_t n;
    /* Headers, then as much body as Content-Length says. */
    while (used < sizeof h->request - 1 &&
           (n = read(c, h->request + used, sizeof h->request - 1 - used)) > 0) {
        used += (size_t)n;
        h->request[used] = '\0';
        char *end = strstr(h->request, "\r\n\r\n");
        char *cl = strcasestr(h->request, "Content-Length:");
        if (end && (!cl || used >= (size_t)(end + 4 - h->request) + (size_t)atoi(cl + 15)))
            break;
    }
    char resp[128];
    int len =
        snprintf(resp, sizeof resp,
                 "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", h->status);
    if (write(c, resp, (size_t)len) < 0) {
    }
    close(c);
    return NULL;
}

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    assert_int_equal(listen(fd, 1), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_ping_send(void **state)
{
    (void)state;
    http_once h = {.status = 200};
    int port;
    h.listen_fd = listen_loopback(&port);
    pthread_t t;
    pthread_create(&t, NULL, serve_once, &h);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/ping/uuid", port);
    pf_err err = {0};
    assert_int_equal(
        pf_ping_send(base, PF_PING_FAIL, "permafrost: backup: postgres: refused\n", 5, &err), 0);
    pthread_join(t, NULL);
    assert_non_null(strstr(h.request, "POST /ping/uuid/fail HTTP/1.1\r\n"));
    assert_non_null(strstr(h.request, "\r\n\r\npermafrost: backup: postgres: refused\n"));

    /* An answer of 500 is a failure naming the status. */
    h.status = 500;
    pthread_create(&t, NULL, serve_once, &h);
    assert_int_equal(pf_notify_send(base, "backup failed\ninjected", "body", 5, &err), -1);
    pthread_join(t, NULL);
    assert_int_equal(err.code, PF_EIO);
    assert_non_null(strstr(err.msg, "HTTP 500"));
    /* The title is one header line: the line break in it went. */
    assert_non_null(strstr(h.request, "Title: backup failed\r\n"));
    assert_null(strstr(h.request, "injected"));
    close(h.listen_fd);

    /* Nobody listening: a connection failure, quickly. */
    assert_int_equal(pf_ping_send(base, PF_PING_START, NULL, 5, &err), -1);
    assert_int_equal(err.code, PF_ECONN);
    assert_non_null(strstr(err.msg, "/ping/uuid/start"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_url),
        cmocka_unit_test(test_log_tail),
        cmocka_unit_test(test_metrics_merge),
        cmocka_unit_test(test_ping_send),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

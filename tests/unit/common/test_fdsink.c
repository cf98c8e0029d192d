/* common/fdsink: pf_fd_write_all on a pipe and on a socket, and a peer that went away. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fdsink.h"

/* More than a pipe or socket buffer holds, so writes come back short and are resumed. */
#define BIG (1 << 20)

static void roundtrip(int wfd, int rfd)
{
    static unsigned char out[BIG], in[BIG];
    for (size_t i = 0; i < BIG; i++)
        out[i] = (unsigned char)(i * 7 + 3);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(rfd);
        _exit(pf_fd_write_all(wfd, out, BIG) == 0 ? 0 : 1);
    }
    close(wfd);
    size_t got = 0;
    ssize_t n;
    while ((n = read(rfd, in + got, BIG - got)) > 0)
        got += (size_t)n;
    close(rfd);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(got, BIG);
    assert_memory_equal(in, out, BIG);
}

static void test_pipe(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    roundtrip(p[1], p[0]);
}

static void test_socket(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    roundtrip(sv[0], sv[1]);
}

/* A socket whose peer closed: EPIPE, and the process is still here (no SIGPIPE). */
static void test_socket_peer_gone(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    assert_int_equal(pf_fd_write_all(sv[0], "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    close(sv[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipe),
        cmocka_unit_test(test_socket),
        cmocka_unit_test(test_socket_peer_gone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

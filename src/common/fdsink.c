#include "common/fdsink.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

/* Chunks of at most 1 GiB: write() may refuse larger counts on some systems. */
#define WRITE_CHUNK (1u << 30)

int pf_fd_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    bool sock = true; /* until send says otherwise: one failed call, then plain write */
    while (n) {
        size_t chunk = n > WRITE_CHUNK ? WRITE_CHUNK : n;
        ssize_t w = sock ? send(fd, c, chunk, MSG_NOSIGNAL) : write(fd, c, chunk);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (sock && errno == ENOTSOCK) {
                sock = false;
                continue;
            }
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fd_write(pf_sink *s, const void *p, size_t n, pf_err *err)
{
    pf_fd_sink *f = (pf_fd_sink *)s;
    if (pf_fd_write_all(f->fd, p, n) < 0)
        return pf_err_sys(err, PF_EIO, "writing to %s", f->what);
    return 0;
}

void pf_fd_sink_init(pf_fd_sink *s, int fd, const char *what)
{
    s->sink.write = fd_write;
    s->sink.ctx = s;
    s->fd = fd;
    s->what = what;
}

#include "common/fdsink.h"

#include <errno.h>
#include <unistd.h>

static int fd_write(pf_sink *s, const void *p, size_t n, pf_err *err)
{
    pf_fd_sink *f = (pf_fd_sink *)s;
    const char *c = p;
    while (n) {
        ssize_t w = write(f->fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return pf_err_sys(err, PF_EIO, "writing to %s", f->what);
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

void pf_fd_sink_init(pf_fd_sink *s, int fd, const char *what)
{
    s->sink.write = fd_write;
    s->sink.ctx = s;
    s->fd = fd;
    s->what = what;
}

/* Writing whole buffers to a file descriptor: the one loop over short writes and EINTR
 * that files, pipes and sockets share, and a sink built on it. */
#ifndef PF_FDSINK_H
#define PF_FDSINK_H

#include <stddef.h>

#include "common/stream.h"

/* Writes all n bytes to fd, retrying short writes and EINTR. On a socket it sends with
 * MSG_NOSIGNAL, so a peer that went away is EPIPE rather than a fatal SIGPIPE. Returns 0,
 * or -1 with errno set (the caller names the destination). */
int pf_fd_write_all(int fd, const void *p, size_t n);

typedef struct pf_fd_sink {
    pf_sink sink; /* first member: pass &s.sink */
    int fd;
    const char *what; /* names the destination in errors, e.g. "stdout" */
} pf_fd_sink;

void pf_fd_sink_init(pf_fd_sink *s, int fd, const char *what);

#endif

/* A sink that writes every byte to a file descriptor (retrying short writes and EINTR). */
#ifndef PF_FDSINK_H
#define PF_FDSINK_H

#include "common/stream.h"

typedef struct pf_fd_sink {
    pf_sink sink; /* first member: pass &s.sink */
    int fd;
    const char *what; /* names the destination in errors, e.g. "stdout" */
} pf_fd_sink;

void pf_fd_sink_init(pf_fd_sink *s, int fd, const char *what);

#endif

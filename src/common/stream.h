/* Byte streams between components (pg_dump, Redis, ...) and the repository.
 * A sink receives bytes in order; a source hands them out in order. */
#ifndef PF_STREAM_H
#define PF_STREAM_H

#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"

typedef struct pf_sink pf_sink;
struct pf_sink {
    /* Takes all n bytes or fails (-1, err filled). */
    int (*write)(pf_sink *s, const void *p, size_t n, pf_err *err);
    void *ctx;
};

typedef struct pf_source pf_source;
struct pf_source {
    /* Returns bytes read (0 at the end), or -1 with err filled. */
    ssize_t (*read)(pf_source *s, void *p, size_t n, pf_err *err);
    void *ctx;
};

static inline int pf_sink_write(pf_sink *s, const void *p, size_t n, pf_err *err)
{
    return s->write(s, p, n, err);
}

static inline ssize_t pf_source_read(pf_source *s, void *p, size_t n, pf_err *err)
{
    return s->read(s, p, n, err);
}

#endif

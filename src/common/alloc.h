/* Allocation that cannot fail. permafrost treats running out of memory as fatal: it says so
 * on stderr and aborts, as pf_buf does, rather than carrying an error path through code
 * that could do nothing useful with it (a backup half-written is safe: nothing is
 * committed until its snapshot is). Use these where a NULL would otherwise be checked
 * only to abort; code that can recover from a large allocation failing keeps malloc. */
#ifndef PF_ALLOC_H
#define PF_ALLOC_H

#include <stddef.h>

/* malloc(n), n == 0 allowed (returns a unique pointer). */
void *pf_xmalloc(size_t n);
/* calloc(n, size), zeroed; aborts also when n * size overflows. */
void *pf_xcalloc(size_t n, size_t size);
/* realloc(p, n), n == 0 allowed (keeps a valid pointer). */
void *pf_xrealloc(void *p, size_t n);
/* A copy of s; NULL copies as "" (callers that store optional strings rely on it). */
char *pf_xstrdup(const char *s);
/* A NUL-terminated copy of the first n bytes of s. */
char *pf_xstrndup(const char *s, size_t n);

#endif

#include "common/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *oom(size_t want)
{
    fprintf(stderr, "permafrost: out of memory (wanted %zu bytes)\n", want);
    abort();
}

void *pf_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    return p ? p : oom(n);
}

void *pf_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    return p ? p : oom(n * size);
}

void *pf_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    return q ? q : oom(n);
}

char *pf_xstrndup(const char *s, size_t n)
{
    char *d = pf_xmalloc(n + 1);
    if (n) /* s may be NULL when n is 0 */
        memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *pf_xstrdup(const char *s)
{
    if (!s)
        s = "";
    return pf_xstrndup(s, strlen(s));
}

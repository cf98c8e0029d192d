#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int pf_err_set(pf_err *e, int code, const char *fmt, ...)
{
    if (!e)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    e->sys_errno = 0;
    e->retryable = false;
    return -1;
}

int pf_err_sys(pf_err *e, int code, const char *fmt, ...)
{
    int saved = errno;
    if (!e)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    size_t n = strlen(e->msg);
    snprintf(e->msg + n, sizeof e->msg - n, ": %s", strerror(saved));
    e->code = code;
    e->sys_errno = saved;
    e->retryable = false;
    return -1;
}

int pf_err_prefix(pf_err *e, const char *fmt, ...)
{
    if (!e)
        return -1;
    char ctx[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    /* Built by hand: "ctx: old", cut to fit. */
    char old[sizeof e->msg];
    memcpy(old, e->msg, sizeof old);
    size_t n = strlen(ctx);
    if (n > sizeof e->msg - 3)
        n = sizeof e->msg - 3;
    memcpy(e->msg, ctx, n);
    memcpy(e->msg + n, ": ", 2);
    size_t rest = sizeof e->msg - n - 3;
    size_t olen = strnlen(old, rest);
    memcpy(e->msg + n + 2, old, olen);
    e->msg[n + 2 + olen] = 0;
    return -1;
}

void pf_err_clear(pf_err *e)
{
    if (e)
        memset(e, 0, sizeof *e);
}

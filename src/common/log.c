#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>

static void default_handler(int level, const char *msg)
{
    if (level <= PF_LOG_WARN)
        fprintf(stderr, "permafrost: %s%s\n", level == PF_LOG_WARN ? "warning: " : "", msg);
}

static pf_log_fn handler = default_handler;

void pf_log_set_handler(pf_log_fn fn)
{
    handler = fn ? fn : default_handler;
}

void pf_log(int level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    handler(level, msg);
}

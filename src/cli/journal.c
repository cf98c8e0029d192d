#include "cli/journal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "common/log.h"

bool pf_journal_is_stream(int fd)
{
    const char *v = getenv("JOURNAL_STREAM");
    uintmax_t dev, ino;
    char extra;
    if (!v || sscanf(v, "%ju:%ju%c", &dev, &ino, &extra) != 2)
        return false;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return false;
    return (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

const char *pf_journal_prefix(int level)
{
    switch (level) {
    case PF_LOG_ERROR:
        return "<3>";
    case PF_LOG_WARN:
        return "<4>";
    case PF_LOG_INFO:
        return "<6>";
    default:
        return "<7>";
    }
}

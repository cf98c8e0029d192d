/* Lines that journald understands. When a systemd unit's stderr goes to the journal, systemd
 * says so in $JOURNAL_STREAM ("DEVICE:INODE" of that stream); a line that then starts with
 * "<N>" is stored at syslog priority N instead of the unit's default, so `journalctl -p err`
 * shows permafrost's errors and not its progress. Anywhere else the lines stay plain. */
#ifndef PF_JOURNAL_H
#define PF_JOURNAL_H

#include <stdbool.h>

/* True when fd is the stream named by $JOURNAL_STREAM (device and inode both match). A
 * variable inherited by a process whose stderr was redirected elsewhere does not match. */
bool pf_journal_is_stream(int fd);

/* The "<N>" prefix for a pf_log level (common/log.h): error 3, warning 4, info 6, debug 7. */
const char *pf_journal_prefix(int level);

#endif

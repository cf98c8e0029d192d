/* Detecting that stderr is the journal (src/cli/journal.c). */
#include <fcntl.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/journal.h"
#include "common/log.h"

static void test_stream_detection(void **state)
{
    (void)state;
    char path[] = "/tmp/pf-journal-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char v[64];

    unsetenv("JOURNAL_STREAM");
    assert_false(pf_journal_is_stream(fd));

    snprintf(v, sizeof v, "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
    assert_true(pf_journal_is_stream(fd));

    /* Inherited, but this fd is another file: plain lines. */
    int other = open("/dev/null", O_WRONLY);
    assert_false(pf_journal_is_stream(other));
    close(other);

    snprintf(v, sizeof v, "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino + 1);
    setenv("JOURNAL_STREAM", v, 1);
    assert_false(pf_journal_is_stream(fd));
    setenv("JOURNAL_STREAM", "garbage", 1);
    assert_false(pf_journal_is_stream(fd));
    snprintf(v, sizeof v, "%ju:%jux", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
    assert_false(pf_journal_is_stream(fd));

    unsetenv("JOURNAL_STREAM");
    close(fd);
    unlink(path);
}

static void test_prefixes(void **state)
{
    (void)state;
    assert_string_equal(pf_journal_prefix(PF_LOG_ERROR), "<3>");
    assert_string_equal(pf_journal_prefix(PF_LOG_WARN), "<4>");
    assert_string_equal(pf_journal_prefix(PF_LOG_INFO), "<6>");
    assert_string_equal(pf_journal_prefix(PF_LOG_DEBUG), "<7>");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_detection),
        cmocka_unit_test(test_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The command that finishes a half-failed --live restore: quoted for the shell, the
 * snapshot by id, the restore's own options kept, --only and --force replaced. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/finish.h"

static void test_quote(void **state)
{
    (void)state;
    pf_buf b = PF_BUF_INIT;
    pf_shell_quote(&b, "/home/mastodon/live");
    pf_buf_append_str(&b, " ");
    pf_shell_quote(&b, "a b");
    pf_buf_append_str(&b, " ");
    pf_shell_quote(&b, "it's");
    pf_buf_append_str(&b, " ");
    pf_shell_quote(&b, "");
    pf_buf_append_str(&b, " ");
    pf_shell_quote(&b, "$(rm -rf /)");
    assert_string_equal((char *)b.data, "/home/mastodon/live 'a b' 'it'\\''s' '' '$(rm -rf /)'");
    pf_buf_free(&b);
}

static void test_command(void **state)
{
    (void)state;
    char *args[] = {
        "latest",    "--live",       "/srv/my live", "--only",       "secrets,db,media,redis",
        "--force",   "--redis-port", "6380",         "--only=media", "--media-root",
        "/mnt/media"};
    pf_g.repo_url = "sftp://b@h/pf";
    char *c = pf_restore_finish_command("0123abcd", args, 11, 0, "media,redis", true);
    assert_string_equal(c, "permafrost --repo sftp://b@h/pf restore 0123abcd --live '/srv/my live' "
                           "--redis-port 6380 --media-root /mnt/media --only media,redis --force");
    free(c);
    pf_g.repo_url = NULL;
    c = pf_restore_finish_command("0123abcd", args + 1, 2, -1, "redis", false);
    assert_string_equal(c, "permafrost restore 0123abcd --live '/srv/my live' --only redis");
    free(c);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    pf_restore_finish_print(f, "media", "secrets, db", "media, redis", "permafrost restore x");
    fclose(f);
    assert_string_equal(text, "permafrost: restore stopped in the media step: restored: secrets, "
                              "db; not restored: media, redis\n"
                              "permafrost: to finish, run:\n  permafrost restore x\n");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

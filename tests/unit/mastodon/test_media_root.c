/* The media root, resolved in one place: default, ":rails_root", relative and absolute
 * PAPERCLIP_ROOT_PATH, trailing slashes removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mastodon/env.h"

static void is(const char *live, const char *root, const char *want)
{
    char *got = pf_mastodon_media_root(live, root);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_media_root(void **state)
{
    (void)state;
    is("/home/mastodon/live", NULL, "/home/mastodon/live/public/system");
    is("/home/mastodon/live", "", "/home/mastodon/live/public/system");
    is("/home/mastodon/live", ":rails_root/public/system", "/home/mastodon/live/public/system");
    is("/l", "uploads", "/l/uploads");
    is("/l", "/srv/media", "/srv/media");
    /* the two resolvers of old differed here: one kept the slash */
    is("/l", "/srv/media/", "/srv/media");
    is("/l", "/srv/media///", "/srv/media");
    is("/l", "/", "/");
}

static void test_load_uses_it(void **state)
{
    (void)state;
    char dir[] = "/tmp/pf-media-root-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/.env.production", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("LOCAL_DOMAIN=example.org\nPAPERCLIP_ROOT_PATH=/srv/x/\n", f);
    fclose(f);
    pf_mastodon_env e = {0};
    pf_err err = {0};
    assert_int_equal(pf_mastodon_env_load(dir, &e, &err), 0);
    assert_string_equal(e.paperclip_root, "/srv/x");
    pf_mastodon_env_free(&e);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_media_root),
                                       cmocka_unit_test(test_load_uses_it)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

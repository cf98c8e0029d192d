/* The host component's pure parts (component/host.h): which nginx sites name the
 * server's domain, which systemd entries are Mastodon's, host_exclude's globs, and which
 * paths of a snapshot's host/ a restore may write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "component/host.h"

static bool names(const char *text, const char *domain)
{
    return pf_host_nginx_names_domain(text, strlen(text), domain);
}

static void test_nginx_names_domain(void **state)
{
    (void)state;
    assert_true(names("server { server_name example.com; }", "example.com"));
    assert_true(names("server_name www.example.com example.com;\n", "example.com"));
    assert_true(names("server_name Example.COM;", "example.com"));  /* DNS is case-blind */
    assert_true(names("server_name example.com.;", "example.com")); /* fully qualified */
    assert_true(
        names("ssl_certificate /etc/letsencrypt/live/example.com/fullchain.pem;", "example.com"));
    assert_true(names("example.com", "example.com")); /* at both ends of the text */
}

static void test_nginx_other_names(void **state)
{
    (void)state;
    /* a subdomain, a longer name, a name that ends the same: another site */
    assert_false(names("server_name files.example.com;", "example.com"));
    assert_false(names("server_name example.community;", "example.com"));
    assert_false(names("server_name myexample.com;", "example.com"));
    assert_false(names("server_name example.com-staging;", "example.com"));
    assert_false(names("server_name example_com;", "example.com"));
    /* a comment mentioning it does not make it the site */
    assert_false(names("# copied from example.com's\nserver_name other.org;", "example.com"));
    assert_true(names("# other.org\nserver_name example.com; # main", "example.com"));
    assert_false(names("", "example.com"));
    assert_false(names("server_name example.com;", ""));
    assert_false(pf_host_nginx_names_domain("server_name example.com;", 10, "example.com"));
    assert_false(pf_host_nginx_names_domain("x", 1, NULL));
}

static void test_unit_names(void **state)
{
    (void)state;
    bool dropin = true;
    assert_true(pf_host_unit_name("mastodon-web.service", &dropin));
    assert_false(dropin);
    assert_true(pf_host_unit_name("mastodon-sidekiq-default.service.d", &dropin));
    assert_true(dropin);
    assert_false(pf_host_unit_name("mastodon-.service", &dropin));
    assert_false(pf_host_unit_name("mastodon-web.timer", &dropin));
    assert_false(pf_host_unit_name("nginx.service", &dropin));
    assert_false(pf_host_unit_name("mastodon.service", &dropin));
    assert_false(pf_host_unit_name("mastodon-web.service.bak", &dropin));
    assert_false(pf_host_unit_name("mastodon-web.service.d/x", &dropin));
}

static void test_excluded(void **state)
{
    (void)state;
    assert_false(pf_host_excluded(NULL, "/etc/letsencrypt"));
    assert_false(pf_host_excluded("", "/etc/letsencrypt"));
    assert_true(pf_host_excluded("/etc/letsencrypt", "/etc/letsencrypt"));
    assert_true(
        pf_host_excluded("/var/* /etc/systemd/*", "/etc/systemd/system/mastodon-web.service"));
    assert_true(pf_host_excluded("/x,/etc/nginx/*", "/etc/nginx/sites-enabled/mastodon"));
    assert_false(pf_host_excluded("/etc/nginx", "/etc/nginx/sites-available/mastodon"));
}

static void test_place_of(void **state)
{
    (void)state;
    assert_int_equal(pf_host_place_of("etc"), PF_HOST_CONTAINER);
    assert_int_equal(pf_host_place_of("etc/nginx/sites-enabled"), PF_HOST_CONTAINER);
    assert_int_equal(pf_host_place_of("var/spool/cron/crontabs"), PF_HOST_CONTAINER);
    assert_int_equal(pf_host_place_of("etc/letsencrypt"), PF_HOST_KEPT);
    assert_int_equal(pf_host_place_of("etc/nginx/sites-available/mastodon"), PF_HOST_KEPT);
    assert_int_equal(pf_host_place_of("etc/nginx/sites-enabled/mastodon"), PF_HOST_KEPT);
    assert_int_equal(pf_host_place_of("etc/systemd/system/mastodon-web.service"), PF_HOST_KEPT);
    assert_int_equal(pf_host_place_of("etc/systemd/system/mastodon-web.service.d"), PF_HOST_KEPT);
    assert_int_equal(pf_host_place_of("var/spool/cron/crontabs/mastodon"), PF_HOST_KEPT);
    /* what a forged snapshot would plant */
    assert_int_equal(pf_host_place_of("etc/passwd"), PF_HOST_REFUSED);
    assert_int_equal(pf_host_place_of("etc/nginx/nginx.conf"), PF_HOST_REFUSED);
    assert_int_equal(pf_host_place_of("etc/systemd/system/ssh.service"), PF_HOST_REFUSED);
    assert_int_equal(pf_host_place_of("var/spool/cron/crontabs/root"), PF_HOST_REFUSED);
    assert_int_equal(pf_host_place_of("etc/nginx/sites-available/.."), PF_HOST_REFUSED);
    assert_int_equal(pf_host_place_of("etc/nginx/sites-available/a/b"), PF_HOST_REFUSED);
    assert_int_equal(pf_host_place_of("root"), PF_HOST_REFUSED);
    assert_int_equal(pf_host_place_of(""), PF_HOST_REFUSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nginx_names_domain), cmocka_unit_test(test_nginx_other_names),
        cmocka_unit_test(test_unit_names),         cmocka_unit_test(test_excluded),
        cmocka_unit_test(test_place_of),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

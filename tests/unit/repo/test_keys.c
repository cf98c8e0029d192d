/* repo/keys: listing and removing key files, and the refusals that keep a repository
 * openable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "repo/keys.h"

static pf_keyfile_info *find(pf_keyfile_info *v, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].id, id))
            return &v[i];
    return NULL;
}

static void test_list_and_remove(void **state)
{
    (void)state;
    pf_err err = {0};
    pf_repo *r = pf_repo_init(pf_store_mem_new(), "first", NULL, &err);
    assert_non_null(r);
    char second[PF_HEX_ID_LEN + 1], removed[PF_HEX_ID_LEN + 1] = "";
    assert_int_equal(pf_repo_add_key(r, "second", second, &err), 0);
    /* A file under keys/ that is no key id is not listed; a key file that does not parse
     * is listed with empty fields. */
    assert_int_equal(pf_store_put(r->store, "keys/README", "x", 1, &err), 0);

    pf_keyfile_info *k;
    size_t n;
    assert_int_equal(pf_keyfile_list(r, &k, &n, &err), 0);
    assert_int_equal(n, 2);
    pf_keyfile_info *cur = find(k, n, r->key_id), *other = find(k, n, second);
    assert_non_null(cur);
    assert_non_null(other);
    assert_true(cur->current);
    assert_false(other->current);
    assert_true(cur->created[0] != 0); /* described when it was made */
    pf_keyfile_free(k, n);

    assert_int_equal(pf_keyfile_remove(r, "", removed, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);
    assert_int_equal(pf_keyfile_remove(r, "zzzz", removed, &err), -1);
    assert_int_equal(err.code, PF_ENOTFOUND);
    assert_int_equal(pf_keyfile_remove(r, r->key_id, removed, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);
    assert_non_null(strstr(err.msg, "key in use"));
    pf_err_clear(&err);
    assert_int_equal(pf_keyfile_remove(r, "", removed, &err), -1); /* nothing went */
    assert_int_equal(pf_keyfile_list(r, &k, &n, &err), 0);
    assert_int_equal(n, 2);
    pf_keyfile_free(k, n);

    assert_int_equal(pf_keyfile_remove(r, second, removed, &err), 0);
    assert_string_equal(removed, second);
    assert_int_equal(pf_keyfile_list(r, &k, &n, &err), 0);
    assert_int_equal(n, 1);
    pf_keyfile_free(k, n);
    assert_int_equal(pf_keyfile_remove(r, r->key_id, removed, &err), -1);
    assert_non_null(strstr(err.msg, "last key"));
    pf_repo_free(r);
}

static void test_remove_current_and_verify(void **state)
{
    (void)state;
    pf_err err = {0};
    pf_repo *r = pf_repo_init(pf_store_mem_new(), "first", NULL, &err);
    assert_non_null(r);
    assert_int_equal(pf_keyfile_verify_master(r, &err), 0); /* nothing to open yet */
    char id[PF_HEX_ID_LEN + 1], obj[PF_HEX_ID_LEN + 1];
    assert_int_equal(pf_repo_save_object(r, "index", "{}", 2, obj, &err), 0);
    assert_int_equal(pf_keyfile_verify_master(r, &err), 0);
    assert_int_equal(pf_repo_add_key(r, "second", id, &err), 0);
    assert_int_equal(pf_keyfile_remove_current(r, &err), 0);
    pf_keyfile_info *k;
    size_t n;
    assert_int_equal(pf_keyfile_list(r, &k, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(k[0].id, id);
    pf_keyfile_free(k, n);
    /* A master key of another repository does not open this one's objects. */
    r->keys.master[0] ^= 1;
    assert_int_equal(pf_keyfile_verify_master(r, &err), -1);
    assert_int_equal(err.code, PF_EAUTH);
    pf_repo_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_and_remove),
        cmocka_unit_test(test_remove_current_and_verify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

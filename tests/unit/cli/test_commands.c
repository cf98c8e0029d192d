/* The command table (src/cli/commands.c): every command is described (summary, usage),
 * the locks are the ones docs/DECISIONS.md gives, and the dispatcher answers --help,
 * usage errors and unknown commands from the table before anything is opened (no
 * repository is configured here: a command that went further would fail). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "repo/lock.h"
#include "store/store.h"

/* ---- helpers ---------------------------------------------------------------------- */

typedef struct captured {
    int rc;
    char out[8192], err[8192];
} captured;

static void slurp(FILE *f, char *buf, size_t n)
{
    rewind(f);
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = 0;
    fclose(f);
}

/* Runs the dispatcher on a NULL-ended argv with stdout and stderr captured. */
static void run(captured *c, const char *const *args)
{
    char *argv[16];
    int argc = 0;
    while (args[argc]) {
        argv[argc] = (char *)args[argc];
        argc++;
    }
    argv[argc] = NULL;
    FILE *fo = tmpfile(), *fe = tmpfile();
    assert_non_null(fo);
    assert_non_null(fe);
    fflush(stdout);
    fflush(stderr);
    int so = dup(STDOUT_FILENO), se = dup(STDERR_FILENO);
    dup2(fileno(fo), STDOUT_FILENO);
    dup2(fileno(fe), STDERR_FILENO);
    c->rc = pf_cmd_dispatch(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, STDOUT_FILENO);
    dup2(se, STDERR_FILENO);
    close(so);
    close(se);
    slurp(fo, c->out, sizeof c->out);
    slurp(fe, c->err, sizeof c->err);
}

static const pf_command *find(const char *name)
{
    const pf_command *c = pf_cmd_find(name);
    if (!c)
        fail_msg("no command %s in the table", name);
    return c;
}

/* ---- the table -------------------------------------------------------------------- */

static void test_every_command_described(void **state)
{
    (void)state;
    assert_true(pf_ncommands >= 14);
    for (size_t i = 0; i < pf_ncommands; i++) {
        const pf_command *c = &pf_commands[i];
        assert_non_null(c->name);
        assert_non_null(c->run);
        assert_non_null(c->summary);
        assert_true(strlen(c->summary) > 10);
        assert_ptr_equal(pf_cmd_find(c->name), c);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(pf_commands[j].name, c->name);
        if (c->flags & PF_CMD_OWN_SETUP) {
            /* Only backup and restore still parse argv themselves. */
            assert_true(!strcmp(c->name, "backup") || !strcmp(c->name, "restore"));
            continue;
        }
        assert_non_null(c->syntax);
        assert_non_null(strstr(c->syntax->usage, "usage: permafrost"));
        assert_non_null(strstr(c->syntax->usage, c->name));
        /* -h is the dispatcher's: a command must not claim it. */
        assert_null(strchr(c->syntax->shortopts ? c->syntax->shortopts : "", 'h'));
        for (const struct option *o = c->syntax->longopts; o && o->name; o++)
            assert_string_not_equal(o->name, "help");
    }
    assert_null(pf_cmd_find("nope"));
    assert_null(pf_cmd_find(""));
}

static void test_locks(void **state)
{
    (void)state;
    /* Read-only commands that read packs or snapshots: shared, dry run or not. */
    static const char *shared[] = {"ls", "dump", "check", "restore", "copy", "backup"};
    for (size_t i = 0; i < sizeof shared / sizeof *shared; i++) {
        const pf_command *c = find(shared[i]);
        assert_int_equal(pf_cmd_lock_of(c, false), PF_CMD_LOCK_SHARED);
        assert_int_equal(pf_cmd_lock_of(c, true), PF_CMD_LOCK_SHARED);
    }
    /* Commands that remove or rewrite: exclusive, as before the table. */
    static const char *exclusive[] = {"forget", "prune", "upgrade"};
    for (size_t i = 0; i < sizeof exclusive / sizeof *exclusive; i++)
        assert_int_equal(pf_cmd_lock_of(find(exclusive[i]), false), PF_CMD_LOCK_EXCLUSIVE);
    /* forget --dry-run changes nothing and takes no lock; prune --dry-run keeps its
     * exclusive one (its estimate must not race a backup). */
    assert_int_equal(pf_cmd_lock_of(find("forget"), true), PF_CMD_LOCK_NONE);
    assert_int_equal(pf_cmd_lock_of(find("prune"), true), PF_CMD_LOCK_EXCLUSIVE);
    assert_true(find("forget")->flags & PF_CMD_ROOM_FOR_LOCK);
    assert_true(find("prune")->flags & PF_CMD_ROOM_FOR_LOCK);
    /* Small objects only, or the lock itself: none. */
    static const char *none[] = {"init", "snapshots", "unlock", "key", "config"};
    for (size_t i = 0; i < sizeof none / sizeof *none; i++)
        assert_int_equal(pf_cmd_lock_of(find(none[i]), false), PF_CMD_LOCK_NONE);
    /* A lock or an index needs a repository; the index is loaded under a lock. */
    for (size_t i = 0; i < pf_ncommands; i++) {
        const pf_command *c = &pf_commands[i];
        if (c->lock != PF_CMD_LOCK_NONE || (c->flags & (PF_CMD_INDEX | PF_CMD_PASSPHRASE)))
            assert_true(c->flags & PF_CMD_REPO);
        if (c->flags & PF_CMD_INDEX)
            assert_int_not_equal(c->lock, PF_CMD_LOCK_NONE);
    }
    assert_true(find("ls")->flags & PF_CMD_INDEX);
    assert_true(find("dump")->flags & PF_CMD_INDEX);
    assert_true(find("init")->flags & PF_CMD_STORE);
    assert_true(find("config")->flags & PF_CMD_NO_CONFIG);
    assert_true(find("upgrade")->flags & PF_CMD_PASSPHRASE);
}

/* ---- the dispatcher --------------------------------------------------------------- */

static void test_help_from_the_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < pf_ncommands; i++) {
        const pf_command *c = &pf_commands[i];
        if (c->flags & PF_CMD_OWN_SETUP)
            continue;
        captured r;
        run(&r, (const char *[]){c->name, "--help", NULL});
        assert_int_equal(r.rc, PF_EXIT_OK);
        assert_string_equal(r.out, c->syntax->usage);
        assert_string_equal(r.err, "");
        /* -h too, and after operands (getopt permutes). */
        run(&r, (const char *[]){c->name, "x", "-h", NULL});
        assert_int_equal(r.rc, PF_EXIT_OK);
        assert_string_equal(r.out, c->syntax->usage);
    }
    /* backup and restore answer --help themselves (their --live forms have their own). */
    captured r;
    run(&r, (const char *[]){"backup", "--help", NULL});
    assert_int_equal(r.rc, PF_EXIT_OK);
    assert_non_null(strstr(r.out, "usage: permafrost backup"));
    run(&r, (const char *[]){"restore", "--live", "/nonexistent", "--help", NULL});
    assert_int_equal(r.rc, PF_EXIT_OK);
    assert_non_null(strstr(r.out, "--live"));
}

static void test_usage_errors(void **state)
{
    (void)state;
    captured r;
    run(&r, (const char *[]){"nope", NULL});
    assert_int_equal(r.rc, PF_EXIT_USAGE);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "unknown command \"nope\": see 'permafrost --help'"));

    /* Too few or too many operands: the usage on stderr, exit 2. */
    const char *const *bad[] = {
        (const char *[]){"ls", NULL},
        (const char *[]){"ls", "a", "b", "c", NULL},
        (const char *[]){"dump", "latest", NULL},
        (const char *[]){"init", "extra", NULL},
        (const char *[]){"upgrade", "extra", NULL},
        (const char *[]){"check", "extra", NULL},
        (const char *[]){"key", NULL},
        (const char *[]){"config", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        run(&r, bad[i]);
        assert_int_equal(r.rc, PF_EXIT_USAGE);
        assert_string_equal(r.out, "");
        assert_string_equal(r.err, pf_cmd_find(bad[i][0])->syntax->usage);
    }
    /* An unknown option: getopt's line, then the usage. */
    run(&r, (const char *[]){"check", "--bogus", NULL});
    assert_int_equal(r.rc, PF_EXIT_USAGE);
    assert_non_null(strstr(r.err, "--bogus"));
    assert_non_null(strstr(r.err, find("check")->syntax->usage));
    /* A missing option argument. */
    run(&r, (const char *[]){"forget", "--keep-last", NULL});
    assert_int_equal(r.rc, PF_EXIT_USAGE);
    assert_non_null(strstr(r.err, find("forget")->syntax->usage));
}

/* Past the parsing, a command's own checks run before the preamble: no repository is
 * configured, yet these fail with their own message, not "no repository given". */
static void test_command_checks_before_opening(void **state)
{
    (void)state;
    captured r;
    run(&r, (const char *[]){"forget", NULL});
    assert_int_equal(r.rc, PF_EXIT_USAGE);
    assert_non_null(strstr(r.err, "no retention policy given"));
    run(&r, (const char *[]){"key", "import", NULL});
    assert_int_equal(r.rc, PF_EXIT_USAGE);
    assert_non_null(strstr(r.err, "key import needs --paper"));
    run(&r, (const char *[]){"check", "--read-data-subset=0%", NULL});
    assert_int_equal(r.rc, PF_EXIT_USAGE);
    assert_non_null(strstr(r.err, "--read-data-subset wants"));
    /* And then the preamble: the repository is the first thing asked for. */
    run(&r, (const char *[]){"snapshots", NULL});
    assert_int_equal(r.rc, PF_EXIT_USAGE);
    assert_non_null(strstr(r.err, "no repository given"));
}

/* The preamble follows the table: with another process's exclusive lock on the
 * repository, the commands that lock are refused (exit 11) and the others run. */
static void test_preamble_locks_as_the_table_says(void **state)
{
    (void)state;
    char dir[256], cmd[300];
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/pf-commands.XXXXXX", t && *t ? t : "/tmp");
    assert_non_null(mkdtemp(dir));
    pf_err err = {0};
    pf_store *st = pf_store_local_new(dir, &err);
    assert_non_null(st);
    pf_repo *r = pf_repo_init(st, "table test", NULL, &err);
    assert_non_null(r);
    pf_lock *held = pf_lock_acquire(r, true, "prune", 0, &err);
    assert_non_null(held);

    setenv("PERMAFROST_PASSWORD", "table test", 1);
    setenv("PERMAFROST_LOCK_WAIT", "0", 1);
    pf_g.repo_url = dir;
    captured c;
    const char *const *locking[] = {
        (const char *[]){"ls", "latest", NULL},
        (const char *[]){"dump", "latest", "file", NULL},
        (const char *[]){"check", NULL},
        (const char *[]){"prune", NULL},
        (const char *[]){"forget", "--keep-last", "1", NULL},
    };
    for (size_t i = 0; i < sizeof locking / sizeof *locking; i++) {
        run(&c, locking[i]);
        assert_int_equal(c.rc, PF_EXIT_LOCKED);
        assert_non_null(strstr(c.err, "prune"));
    }
    /* No lock: these run beside the holder. */
    run(&c, (const char *[]){"snapshots", NULL});
    assert_int_equal(c.rc, PF_EXIT_OK);
    assert_non_null(strstr(c.out, "0 snapshots"));
    run(&c, (const char *[]){"forget", "--keep-last", "1", "--dry-run", NULL});
    assert_int_equal(c.rc, PF_EXIT_OK);
    /* Released: ls gets past the lock and the index, to the snapshot it cannot find. */
    pf_lock_release(held);
    run(&c, (const char *[]){"ls", "latest", NULL});
    assert_int_equal(c.rc, PF_EXIT_NOTFOUND);
    pf_g.repo_url = NULL;
    unsetenv("PERMAFROST_PASSWORD");
    unsetenv("PERMAFROST_LOCK_WAIT");
    pf_repo_free(r);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    unsetenv("PERMAFROST_REPO");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_command_described),
        cmocka_unit_test(test_locks),
        cmocka_unit_test(test_help_from_the_table),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_command_checks_before_opening),
        cmocka_unit_test(test_preamble_locks_as_the_table_says),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The configuration file, permafrost.conf: the one table of the keys it may hold, and a
 * reader that checks every line against it.
 *
 * The table is the only list of keys. docs/permafrost.conf.5 and contrib/permafrost.conf
 * document the same keys (tests/unit/cli/test_config_file.c fails when they drift), and code
 * that reads a key with pf_config_get() must find it here, or a file that sets it is
 * refused as naming an unknown key. Adding a key: a row here, a paragraph in the man page,
 * a commented line in the example file. */
#ifndef PF_CONF_H
#define PF_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

typedef enum pf_conf_type {
    PF_CONF_TEXT,     /* any non-empty string */
    PF_CONF_PATH,     /* a file or directory name */
    PF_CONF_REPO,     /* a repository location, refused as --repo refuses a mistyped URL */
    PF_CONF_BOOL,     /* true/yes/1 or false/no/0 */
    PF_CONF_INT,      /* a decimal integer from min to max */
    PF_CONF_SECONDS,  /* a non-negative decimal number of seconds */
    PF_CONF_COUNT,    /* a keep count: 0.., or all/unlimited/-1 (pf_retention_parse_count) */
    PF_CONF_DURATION, /* a retention duration such as 1y6m (pf_retention_parse_duration) */
    PF_CONF_PERCENT,  /* 0 to 100, with an optional '%' */
    PF_CONF_URL,      /* an http:// or https:// URL */
} pf_conf_type;

typedef struct pf_conf_key {
    const char *name;
    pf_conf_type type;
    int min, max;     /* PF_CONF_INT only */
    const char *sets; /* what the key stands for: the option or setting it replaces */
    const char *doc;  /* one line, for `permafrost config keys` */
} pf_conf_key;

extern const pf_conf_key pf_conf_keys[];
extern const size_t pf_conf_nkeys;

/* The key named exactly `name`, or NULL. */
const pf_conf_key *pf_conf_find(const char *name);
/* The known key closest to an unknown `name` (edit distance, ignoring case, '-' for '_'),
 * when it is close enough to be the likely intent; otherwise NULL. */
const char *pf_conf_nearest(const char *name);
/* Short name of a type for messages and listings ("number", "yes/no", ...). */
const char *pf_conf_type_name(pf_conf_type t);
/* Checks value against k's type. Returns 0, or -1 with a reason in why (no key name,
 * no file: the caller says where). */
int pf_conf_check_value(const pf_conf_key *k, const char *value, char *why, size_t n);
/* The meaning of a value that passed the check of a PF_CONF_BOOL key. */
bool pf_conf_true(const char *value);

typedef struct pf_conf_entry {
    char *key, *value;
    int line;
} pf_conf_entry;

typedef struct pf_conf_problem {
    int line;
    char *text; /* "FILE:LINE: what is wrong" */
} pf_conf_problem;

/* A file read and checked: the lines that were fine, and one problem per mistake in
 * file order. */
typedef struct pf_conf_file {
    pf_conf_entry *entries;
    size_t nentries;
    pf_conf_problem *problems;
    size_t nproblems;
} pf_conf_file;

/* Reads and checks path into *f (zeroed first). Unknown keys, bad values, empty values,
 * a key set twice, lines that are not `key = value`, lines too long for the parser: each
 * is a problem (of the lines that are not `key = value`, inih names the first only).
 * Sections ([name]) are allowed and ignored; a line is never continued on the next. Returns 0 when
 * the file could be read (problems may still be listed), or -1 with err set (PF_EUSAGE, errno kept:
 * ENOENT for a missing file). */
int pf_conf_read(const char *path, pf_conf_file *f, pf_err *err);
void pf_conf_file_free(pf_conf_file *f);

#endif

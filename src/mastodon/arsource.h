/* Where a server keeps its ACTIVE_RECORD_ENCRYPTION_* keys: .env.production, or the
 * environment its systemd units give Mastodon (units.h), and which of them Mastodon uses.
 *
 * Mastodon loads .env.production with dotenv, which never overrides a variable the process
 * already has: a key set by the unit (Environment= or EnvironmentFile=) wins over the same
 * key in .env.production. So each key is taken from the units when they set it, else from
 * .env.production; when both set it differently a warning names the key (never a value).
 * An EnvironmentFile= that is .env.production itself counts as .env.production. */
#ifndef PF_MASTODON_ARSOURCE_H
#define PF_MASTODON_ARSOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "mastodon/arkeys.h"
#include "mastodon/env.h"

typedef struct pf_ar_keyset {
    char *value[3];       /* in the order of pf_ar_key_names; NULL when unset or empty */
    char *source[3];      /* the file each came from; NULL when unset */
    bool from_systemd[3]; /* a unit, drop-in or environment file other than .env.production */
    const char *unit;     /* the unit read (static), NULL when none exists */
    /* The files outside .env.production that hold a key: to be backed up with it. */
    size_t nfiles;
    char **files;
} pf_ar_keyset;

/* Fills *ks from env (the parsed .env.production at env_path; env may be NULL when there is
 * none) and the units found in unit_path (NULL: the default; see units.h). A unit or a
 * required environment file that cannot be read is warned about (naming it) and the units
 * are left out: the keys then come from .env.production alone. Returns 0 (err is for
 * future failures that must stop a backup). Free *ks with pf_ar_keyset_free() in every
 * case. */
int pf_ar_keyset_find(const pf_mastodon_env *env, const char *env_path, const char *unit_path,
                      pf_ar_keyset *ks, pf_err *err);

/* The keys as pf_ar_keys_fit wants them (borrowed from ks). */
pf_ar_keys pf_ar_keyset_keys(const pf_ar_keyset *ks);

/* How many of the three are set. */
int pf_ar_keyset_count(const pf_ar_keyset *ks);

/* The snapshot's own record of the keys Mastodon uses, whatever file they came from:
 * "NAME=value" lines (a value with other characters than [A-Za-z0-9+/=._-] double-quoted,
 * with \" \\ \$ \` escaped), read back with pf_units_apply_envfile. Appended to out. */
#define PF_AR_KEYS_FILE "active_record_encryption.env"
void pf_ar_keyset_env_text(const pf_ar_keyset *ks, pf_buf *out);

/* Compares the keys a snapshot holds (snap[i] for pf_ar_key_names[i], NULL: unset) with
 * the ones a target .env.production sets. Returns how many differ where both are set, and
 * writes their names, comma-separated, into names (never a value). A key the target lacks
 * does not count: Mastodon would refuse to boot, not run with other keys. */
int pf_ar_keys_differ(const char *const snap[3], const pf_mastodon_env *target, char *names,
                      size_t n);

/* Wipes and frees; leaves *ks zeroed. */
void pf_ar_keyset_free(pf_ar_keyset *ks);

#endif

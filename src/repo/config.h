/* The repository's `config` object: format version, repository id, chunker parameters and
 * pack size, as plain JSON (it is read before any key is known).
 *
 * Format 1 (written before the config MAC existed) is not authenticated at all. Format 2
 * carries "mac", an HMAC-SHA256 over a fixed binary encoding of every other field under a
 * key derived from the master key (docs/FORMAT.md §2), checked as soon as a key has opened
 * the master key: a store attacker can then no longer change the chunker, the pack size or
 * the id. A format-2 config must hold exactly its known fields, so that nothing a reader
 * acts on escapes the MAC.
 *
 * Parsing checks every shape and range before anything is used, for both formats: the id
 * is 64 lower-case hex digits (it names a local cache folder), the numbers are integers in
 * range (casting an out-of-range double is undefined). */
#ifndef PF_CONFIG_H
#define PF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "repo/crypto.h"

#define PF_CONFIG_V1 1
#define PF_CONFIG_V2 2
/* Format 3 is format 2 plus write-only keys: the repository has an X25519 key pair, and
 * objects sealed to its public key or under the writers' key (docs/FORMAT.md §18). Its
 * config has format 2's fields; only the version differs. */
#define PF_CONFIG_V3 3
/* The format init writes. */
#define PF_CONFIG_CURRENT PF_CONFIG_V2
/* Length of the binary message the MAC covers. */
#define PF_CONFIG_MAC_MSG_LEN 56

typedef struct pf_repo_config {
    int version;                /* PF_CONFIG_V1, V2 or V3 */
    char id[2 * PF_ID_LEN + 1]; /* repository id, 64 lower-case hex digits */
    uint32_t chunk_min, chunk_avg, chunk_max;
    /* Target pack size. Format 1: a value outside [1 MiB, 1 GiB] or a missing one reads as
     * the default, as it always did. Format 2: such a config is refused. */
    uint32_t pack_size;
    uint8_t mac[PF_ID_LEN]; /* format 2 only */
} pf_repo_config;

/* Parses and checks config bytes. PF_ENOREPO when it is not a permafrost config at all or
 * of an unknown version, PF_ECORRUPT when a field is malformed; the message names the
 * field, the caller prefixes the location. */
int pf_config_parse(const void *text, size_t n, pf_repo_config *c, pf_err *err);
/* The JSON text of c (for c->version 2 with c->mac as given); NULL when out of memory.
 * Free with free(). */
char *pf_config_encode(const pf_repo_config *c);
/* The message the MAC covers (exposed for the known-answer test). */
void pf_config_mac_message(const pf_repo_config *c, uint8_t msg[PF_CONFIG_MAC_MSG_LEN]);
/* HMAC-SHA256(HKDF(master, none, "permafrost config mac"), message). */
int pf_config_mac(const uint8_t master[PF_KEY_LEN], const pf_repo_config *c, uint8_t mac[PF_ID_LEN],
                  pf_err *err);
/* HKDF(master, none, "permafrost config mac"): what a write-only key holds instead of the
 * master key to check config. */
int pf_config_mac_key(const uint8_t master[PF_KEY_LEN], uint8_t key[PF_KEY_LEN], pf_err *err);
/* As pf_config_verify with the MAC key itself. */
int pf_config_verify_key(const uint8_t mac_key[PF_KEY_LEN], const pf_repo_config *c, pf_err *err);
/* Format 2: 0 when c->mac is right for master, PF_ECORRUPT otherwise (the caller says
 * whether a changed config or a wrong key is the likelier cause). Format 1: 0. */
int pf_config_verify(const uint8_t master[PF_KEY_LEN], const pf_repo_config *c, pf_err *err);

#endif

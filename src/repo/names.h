/* The exact shapes of the names a repository gives its objects. Every name that comes
 * from a store listing or from a store object (config's repository id, index entries,
 * snapshots) is checked against these before it is used, above all before it becomes part
 * of a local path (the metadata cache): a store attacker controls those bytes. The store
 * drivers refuse keys with "..", but a name of the right characters and the wrong shape
 * must not be taken for an object either. */
#ifndef PF_NAMES_H
#define PF_NAMES_H

#include <stdbool.h>
#include <stdint.h>

#include "repo/crypto.h"

/* True when s is exactly 64 lower-case hex digits (an id as permafrost writes it). */
bool pf_name_is_id(const char *s);
/* When key is "<dir>/<id>" with an id as above, returns the id inside key; else NULL.
 * Used for keys/, index/, snapshots/ and locks/ listings. */
const char *pf_name_object_id(const char *key, const char *dir);
/* True when key is exactly "data/<xx>/<id>" with <xx> the first two digits of the id;
 * fills id (may be NULL). Anything else under data/ is not a pack. */
bool pf_name_pack_key(const char *key, uint8_t id[PF_ID_LEN]);

#endif

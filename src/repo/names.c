#include "repo/names.h"

#include <string.h>

bool pf_name_is_id(const char *s)
{
    if (!s)
        return false;
    for (int i = 0; i < 2 * PF_ID_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false; /* also stops at a NUL before 64 digits */
    return s[2 * PF_ID_LEN] == 0;
}

const char *pf_name_object_id(const char *key, const char *dir)
{
    size_t n = strlen(dir);
    if (strncmp(key, dir, n) || key[n] != '/' || !pf_name_is_id(key + n + 1))
        return NULL;
    return key + n + 1;
}

bool pf_name_pack_key(const char *key, uint8_t id[PF_ID_LEN])
{
    /* "data/" + 2 + "/" + 64 */
    if (strncmp(key, "data/", 5) || strlen(key) != 5 + 3 + 2 * PF_ID_LEN || key[7] != '/' ||
        !pf_name_is_id(key + 8) || memcmp(key + 5, key + 8, 2))
        return false;
    uint8_t tmp[PF_ID_LEN];
    return pf_unhex(key + 8, id ? id : tmp, PF_ID_LEN) == 0;
}

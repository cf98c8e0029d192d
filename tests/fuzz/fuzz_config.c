/* libFuzzer: the repository config parser (it reads store bytes before anything is
 * authenticated). Whatever parses must satisfy every documented check, encode again to
 * the same config, and, given the MAC for some key, verify under that key only. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo/config.h"
#include "repo/names.h"
#include "repo/pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pf_repo_config c, d;
    pf_err err = {0};
    if (pf_config_parse(data, size, &c, &err))
        return 0;
    if ((c.version != PF_CONFIG_V1 && c.version != PF_CONFIG_V2 && c.version != PF_CONFIG_V3) ||
        !pf_name_is_id(c.id))
        abort();
    uint32_t avg = c.chunk_avg;
    if (!(c.chunk_min >= 64 && c.chunk_min < avg && avg < c.chunk_max &&
          c.chunk_max <= PF_MAX_BLOB && avg >= 256 && !(avg & (avg - 1))))
        abort();
    if (c.pack_size < (1u << 20) || c.pack_size > (1u << 30))
        abort();
    char *text = pf_config_encode(&c);
    if (!text)
        abort();
    if (pf_config_parse(text, strlen(text), &d, &err) || memcmp(&c, &d, sizeof c))
        abort();
    free(text);
    uint8_t master[PF_KEY_LEN] = {0}, other[PF_KEY_LEN] = {1};
    if (c.version == PF_CONFIG_V1)
        c.version = PF_CONFIG_V2;
    if (pf_config_mac(master, &c, c.mac, &err) || pf_config_verify(master, &c, &err) ||
        !pf_config_verify(other, &c, &err))
        abort();
    return 0;
}

/* libFuzzer: .env.production parsing must never crash, hang or leak, whatever the bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/log.h"
#include "mastodon/env.h"

static void quiet(int level, const char *msg)
{
    (void)level;
    (void)msg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pf_log_set_handler(quiet);
    pf_mastodon_env e;
    pf_err err = {0};
    if (pf_mastodon_env_parse((const char *)data, size, &e, &err) == 0) {
        /* Whatever parsed must be usable as C strings. */
        if (e.db_host)
            (void)strlen(e.db_host);
        (void)strlen(e.db_name);
        (void)strlen(e.db_user);
        (void)strlen(e.local_domain);
        for (size_t i = 0; i < e.nvars; i++)
            (void)pf_mastodon_env_get(&e, e.keys[i]);
    }
    pf_mastodon_env_free(&e);
    return 0;
}

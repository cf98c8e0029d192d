/* libFuzzer: what issue 16 reads from outside must never crash, hang or leak: systemd unit
 * files and environment files (units.c), an ActiveRecord envelope read from the database
 * (arkeys.c), pgbouncer.ini (pgbouncer.c). The first byte picks the reader. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "component/pgbouncer.h"
#include "mastodon/arkeys.h"
#include "mastodon/units.h"

static void quiet(int level, const char *msg)
{
    (void)level;
    (void)msg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pf_log_set_handler(quiet);
    if (size < 1)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    char *z = malloc(len + 1); /* a NUL-terminated copy for the readers that want one */
    if (!z)
        return 0;
    memcpy(z, text, len);
    z[len] = 0;
    pf_unit_env u = {0};
    pf_err err = {0};
    switch (data[0] % 5) {
    case 0:
        pf_units_apply_unit(&u, text, len, "fuzz");
        break;
    case 1:
        pf_units_apply_envfile(&u, text, len, "fuzz");
        break;
    case 2:
        pf_units_apply_environment(&u, z, "fuzz");
        break;
    case 3: {
        pf_ar_envelope e;
        (void)pf_ar_looks_encrypted(text, len);
        (void)pf_ar_envelope_parse(text, len, &e, &err);
        pf_ar_envelope_free(&e);
        break;
    }
    case 4: {
        pf_pgbouncer_target t;
        (void)pf_pgbouncer_ini_parse(z, "mastodon_production", &t, &err);
        break;
    }
    }
    for (size_t i = 0; i < u.n; i++)
        (void)strlen(pf_unit_env_get(&u, u.keys[i], NULL));
    pf_unit_env_free(&u);
    free(z);
    return 0;
}

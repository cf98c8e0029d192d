/* libFuzzer: globals.sql filtering must never crash, hang or leak, whatever the bytes; and
 * what it accepts, re-written, must be accepted again and re-written the same (so the SQL
 * that reaches psql is always in the forms the filter knows, never raw input). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "component/pgsql_filter.h"

static void join(pf_buf *b, const pf_pgsql_globals *g)
{
    for (size_t i = 0; i < g->nroles; i++)
        pf_buf_append_str(b, g->roles[i].sql);
    if (g->has_section)
        pf_buf_append_str(b, PF_PGSQL_SECTION_MARK "\n");
    for (size_t i = 0; i < g->ndb; i++)
        pf_buf_append_str(b, g->db[i].sql);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pf_pgsql_globals g, again;
    pf_err err = {0};
    if (pf_pgsql_globals_parse((const char *)data, size, "db", &g, &err) != 0) {
        if (err.code != PF_ECORRUPT || strncmp(err.msg, "line ", 5) != 0)
            abort();
        return 0;
    }
    pf_buf first = PF_BUF_INIT, second = PF_BUF_INIT;
    join(&first, &g);
    if (pf_pgsql_globals_parse(first.data ? (const char *)first.data : "", first.len, "db", &again,
                               &err) != 0)
        abort();
    join(&second, &again);
    if (first.len != second.len || (first.len && memcmp(first.data, second.data, first.len)))
        abort();
    if (g.nroles != again.nroles || g.ndb != again.ndb)
        abort();
    for (size_t i = 0; i < g.nroles; i++)
        if (g.roles[i].kind != again.roles[i].kind ||
            (g.roles[i].role == NULL) != (again.roles[i].role == NULL) ||
            (g.roles[i].role && strcmp(g.roles[i].role, again.roles[i].role) != 0) ||
            g.roles[i].superuser != again.roles[i].superuser)
            abort();
    pf_buf_free(&first);
    pf_buf_free(&second);
    pf_pgsql_globals_free(&g);
    pf_pgsql_globals_free(&again);
    return 0;
}

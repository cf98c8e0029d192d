#include "repo/readplan.h"

#include <stdlib.h>

static int part_cmp(const void *a, const void *b)
{
    const pf_read_part *x = a, *y = b;
    if (x->pack != y->pack)
        return x->pack < y->pack ? -1 : 1;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    /* ties by tag, so the plan does not depend on qsort's order */
    return x->tag < y->tag ? -1 : x->tag > y->tag;
}

size_t pf_read_plan(pf_read_part *parts, size_t n, uint64_t max_gap, uint64_t max_run,
                    pf_read_run *runs)
{
    if (!n)
        return 0;
    qsort(parts, n, sizeof *parts, part_cmp);
    size_t nr = 0;
    pf_read_run *cur = NULL;
    uint64_t end = 0; /* the current run's end */
    for (size_t i = 0; i < n; i++) {
        const pf_read_part *p = &parts[i];
        uint64_t pend = (uint64_t)p->offset + p->length;
        if (cur && cur->pack == p->pack && p->offset <= end + max_gap) {
            uint64_t new_end = pend > end ? pend : end;
            if (new_end - cur->offset <= max_run) {
                end = new_end;
                cur->length = end - cur->offset;
                cur->count++;
                continue;
            }
        }
        cur = &runs[nr++];
        cur->pack = p->pack;
        cur->offset = p->offset;
        cur->length = p->length;
        cur->first = i;
        cur->count = 1;
        end = pend;
    }
    return nr;
}

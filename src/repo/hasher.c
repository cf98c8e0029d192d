#include "repo/hasher.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_HELPERS 3

struct pf_hasher {
    const pf_keys *keys;
    pthread_t threads[MAX_HELPERS];
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    /* The batch: chunks [next, k) are not taken yet; busy helpers are still hashing. */
    const uint8_t *const *p;
    const size_t *n;
    uint8_t (*ids)[PF_ID_LEN];
    size_t k, next;
    unsigned generation;
    int busy, stop;
};

/* Takes chunks of the current batch until none is left. Called with mu held; returns
 * with it held. */
static void take_chunks(pf_hasher *h)
{
    while (h->next < h->k) {
        size_t i = h->next++;
        pthread_mutex_unlock(&h->mu);
        pf_blob_id(h->keys, h->p[i], h->n[i], h->ids[i]);
        pthread_mutex_lock(&h->mu);
    }
}

static void *helper(void *arg)
{
    pf_hasher *h = arg;
    unsigned seen = 0;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->stop && h->generation == seen)
            pthread_cond_wait(&h->go, &h->mu);
        if (h->stop)
            break;
        seen = h->generation;
        h->busy++;
        take_chunks(h);
        if (--h->busy == 0)
            pthread_cond_signal(&h->done);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

pf_hasher *pf_hasher_new(const pf_keys *keys, int helpers)
{
    if (helpers <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        helpers = cpus > 1 ? (int)(cpus - 1) : 1;
    }
    if (helpers > MAX_HELPERS)
        helpers = MAX_HELPERS;
    pf_hasher *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->keys = keys;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->go, NULL);
    pthread_cond_init(&h->done, NULL);
    for (int i = 0; i < helpers; i++) {
        if (pthread_create(&h->threads[i], NULL, helper, h))
            break;
        h->nthreads++;
    }
    if (!h->nthreads) {
        pf_hasher_free(h);
        return NULL;
    }
    return h;
}

void pf_hasher_ids(pf_hasher *h, const pf_keys *keys, const uint8_t *const *p, const size_t *n,
                   size_t k, uint8_t (*ids)[PF_ID_LEN])
{
    if (!h || k < 2) {
        for (size_t i = 0; i < k; i++)
            pf_blob_id(keys, p[i], n[i], ids[i]);
        return;
    }
    pthread_mutex_lock(&h->mu);
    h->keys = keys;
    h->p = p;
    h->n = n;
    h->ids = ids;
    h->k = k;
    h->next = 0;
    h->generation++;
    pthread_cond_broadcast(&h->go);
    take_chunks(h);
    /* A helper that woke late finds nothing left; one still hashing is waited for. */
    while (h->busy)
        pthread_cond_wait(&h->done, &h->mu);
    h->k = 0;
    pthread_mutex_unlock(&h->mu);
}

void pf_hasher_free(pf_hasher *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_cond_broadcast(&h->go);
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < h->nthreads; i++)
        pthread_join(h->threads[i], NULL);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->go);
    pthread_cond_destroy(&h->done);
    free(h);
}

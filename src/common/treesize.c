#define _XOPEN_SOURCE 700
#include "common/treesize.h"

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"

struct pf_treesize {
    pthread_t thread;
    char **paths;
    size_t n;
    pthread_mutex_t mu;
    pthread_cond_t ended_cv;
    bool ended;
    uint64_t total;
};

/* nftw's callback has no context argument: each walking thread keeps its own. */
static _Thread_local struct {
    uint64_t bytes;
    const atomic_bool *stop;
} walk;

static atomic_bool stop_all; /* set by pf_treesize_stop: one walk runs at a time */

static int add_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (type == FTW_F && S_ISREG(st->st_mode))
        walk.bytes += (uint64_t)st->st_size;
    return atomic_load(walk.stop) ? 1 : 0;
}

static void *walker(void *arg)
{
    pf_treesize *t = arg;
    walk.bytes = 0;
    walk.stop = &stop_all;
    for (size_t i = 0; i < t->n && !atomic_load(&stop_all); i++)
        nftw(t->paths[i], add_file, 32, FTW_PHYS);
    pthread_mutex_lock(&t->mu);
    t->total = walk.bytes;
    t->ended = true;
    pthread_cond_broadcast(&t->ended_cv);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void free_walk(pf_treesize *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->paths[i]);
    free(t->paths);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->ended_cv);
    free(t);
}

pf_treesize *pf_treesize_start(char *const *paths, size_t n)
{
    pf_treesize *t = pf_xcalloc(1, sizeof *t);
    t->paths = pf_xcalloc(n ? n : 1, sizeof *t->paths);
    for (size_t i = 0; i < n; i++)
        t->paths[i] = pf_xstrdup(paths[i]);
    t->n = n;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->ended_cv, NULL);
    atomic_store(&stop_all, false);
    if (pthread_create(&t->thread, NULL, walker, t)) {
        free_walk(t);
        return NULL;
    }
    return t;
}

bool pf_treesize_wait(pf_treesize *t, double seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double s = (double)until.tv_sec + (double)until.tv_nsec / 1e9 + seconds;
    until.tv_sec = (time_t)s;
    until.tv_nsec = (long)((s - (double)until.tv_sec) * 1e9);
    pthread_mutex_lock(&t->mu);
    while (!t->ended)
        if (pthread_cond_timedwait(&t->ended_cv, &t->mu, &until))
            break;
    bool ended = t->ended;
    pthread_mutex_unlock(&t->mu);
    return ended;
}

uint64_t pf_treesize_total(pf_treesize *t)
{
    pthread_mutex_lock(&t->mu);
    uint64_t total = t->ended ? t->total : 0;
    pthread_mutex_unlock(&t->mu);
    return total;
}

void pf_treesize_stop(pf_treesize *t)
{
    if (!t)
        return;
    atomic_store(&stop_all, true);
    pthread_join(t->thread, NULL);
    free_walk(t);
}

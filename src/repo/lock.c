#include "repo/lock.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

struct pf_lock {
    pf_repo *r;
    pf_lock_info info;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, running;
};

/* Lease length; tests shorten it with PERMAFROST_LOCK_LEASE (seconds). */
int64_t pf_lock_lease_seconds(void)
{
    const char *v = getenv("PERMAFROST_LOCK_LEASE");
    long n = v ? atol(v) : 0;
    return n > 0 ? n : 300;
}

static void my_host(char *out, size_t n)
{
    out[0] = 0;
    gethostname(out, n - 1);
    out[n - 1] = 0;
}

static int write_lock(pf_repo *r, pf_lock_info *li, pf_err *err)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "host", li->host);
    cJSON_AddStringToObject(o, "user", li->user);
    cJSON_AddStringToObject(o, "command", li->command);
    cJSON_AddNumberToObject(o, "pid", (double)li->pid);
    cJSON_AddBoolToObject(o, "exclusive", li->exclusive);
    cJSON_AddNumberToObject(o, "created", (double)li->created);
    cJSON_AddNumberToObject(o, "expires", (double)li->expires);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int rc = pf_repo_save_object(r, "locks", text, strlen(text), li->id, err);
    cJSON_free(text);
    return rc;
}

static int read_lock(pf_repo *r, const char *id, pf_lock_info *li, pf_err *err)
{
    pf_buf b = PF_BUF_INIT;
    memset(li, 0, sizeof *li);
    snprintf(li->id, sizeof li->id, "%s", id);
    if (pf_repo_load_object(r, "locks", id, &b, err)) {
        pf_buf_free(&b);
        return -1;
    }
    cJSON *o = cJSON_ParseWithLength((const char *)b.data, b.len);
    pf_buf_free(&b);
    if (!o)
        return pf_err_set(err, PF_ECORRUPT, "lock %.12s malformed", id);
    cJSON *v;
    if (cJSON_IsString(v = cJSON_GetObjectItem(o, "host")))
        snprintf(li->host, sizeof li->host, "%s", v->valuestring);
    if (cJSON_IsString(v = cJSON_GetObjectItem(o, "user")))
        snprintf(li->user, sizeof li->user, "%s", v->valuestring);
    if (cJSON_IsString(v = cJSON_GetObjectItem(o, "command")))
        snprintf(li->command, sizeof li->command, "%s", v->valuestring);
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(o, "pid")))
        li->pid = (int64_t)v->valuedouble;
    li->exclusive = cJSON_IsTrue(cJSON_GetObjectItem(o, "exclusive"));
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(o, "created")))
        li->created = (int64_t)v->valuedouble;
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(o, "expires")))
        li->expires = (int64_t)v->valuedouble;
    cJSON_Delete(o);
    char host[256];
    my_host(host, sizeof host);
    if (li->expires < (int64_t)time(NULL)) {
        li->stale = true;
        snprintf(li->stale_why, sizeof li->stale_why, "its lease ran out");
    } else if (!strcmp(li->host, host) && li->pid > 0 &&
               kill((pid_t)li->pid, 0) && errno == ESRCH) {
        li->stale = true;
        snprintf(li->stale_why, sizeof li->stale_why, "process %lld is gone",
                 (long long)li->pid);
    }
    return 0;
}

typedef struct collect {
    pf_repo *r;
    pf_lock_info *v;
    size_t n;
} collect;

static int collect_one(const char *id, void *vctx)
{
    collect *c = vctx;
    pf_lock_info li;
    pf_err e = {0};
    if (read_lock(c->r, id, &li, &e)) {
        if (e.code == PF_ENOTFOUND)
            return 0; /* released while we listed */
        /* An unreadable lock cannot hold anyone back forever: treat it as stale. */
        li.stale = true;
        snprintf(li.stale_why, sizeof li.stale_why, "unreadable");
    }
    pf_lock_info *v = realloc(c->v, (c->n + 1) * sizeof *v);
    if (!v)
        return 1;
    c->v = v;
    c->v[c->n++] = li;
    return 0;
}

static int list_all(pf_repo *r, collect *c, pf_err *err)
{
    c->r = r;
    c->v = NULL;
    c->n = 0;
    if (pf_repo_list_objects(r, "locks", collect_one, c, err)) {
        free(c->v);
        return -1;
    }
    return 0;
}

static void remove_lock(pf_repo *r, const char *id)
{
    char key[128];
    pf_err e = {0};
    snprintf(key, sizeof key, "locks/%s", id);
    if (pf_store_remove(r->store, key, &e) && e.code != PF_ENOTFOUND)
        pf_warn("cannot remove %s: %s", key, e.msg);
}

/* Returns the first live lock that conflicts with ours (not ours), clearing stale ones. */
static int find_conflict(pf_repo *r, bool exclusive, const char *mine, pf_lock_info *out,
                         pf_err *err)
{
    collect c;
    if (list_all(r, &c, err))
        return -1;
    int found = 0;
    for (size_t i = 0; i < c.n; i++) {
        pf_lock_info *li = &c.v[i];
        if (mine && !strcmp(li->id, mine))
            continue;
        if (li->stale) {
            pf_warn("removing stale lock %.8s (%s by %s pid %lld on %s): %s", li->id,
                    li->command, li->user, (long long)li->pid, li->host, li->stale_why);
            remove_lock(r, li->id);
            continue;
        }
        if (exclusive || li->exclusive) {
            if (!found)
                *out = *li;
            found = 1;
        }
    }
    free(c.v);
    return found;
}

static void *refresher(void *arg)
{
    pf_lock *l = arg;
    int64_t lease = pf_lock_lease_seconds();
    int64_t every = lease / 3 > 0 ? lease / 3 : 1;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += every;
        pthread_cond_timedwait(&l->cv, &l->mu, &until);
        if (l->stop)
            break;
        pf_lock_info next = l->info;
        next.expires = (int64_t)time(NULL) + lease;
        pf_err e = {0};
        pthread_mutex_unlock(&l->mu);
        int rc = write_lock(l->r, &next, &e);
        pthread_mutex_lock(&l->mu);
        if (rc) {
            pf_warn("cannot refresh the repository lock: %s", e.msg);
            continue;
        }
        char old[PF_HEX_ID_LEN + 1];
        memcpy(old, l->info.id, sizeof old);
        l->info = next;
        pthread_mutex_unlock(&l->mu);
        remove_lock(l->r, old);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

pf_lock *pf_lock_acquire(pf_repo *r, bool exclusive, const char *command, double wait_seconds,
                         pf_err *err)
{
    /* Only commands that remove or rewrite take an exclusive lock (forget, prune, upgrade):
     * through an append-only server they would fail half-way, so they do not start. */
    if (exclusive && pf_store_properties(r->store).append_only) {
        pf_err_set(err, PF_EREFUSED,
                   "%s: refused by the append-only server at %s (it removes and replaces "
                   "nothing but locks): run forget/prune from a trusted machine (a key without "
                   "--append-only, or on the backup host)",
                   command, r->store->location);
        return NULL;
    }
    pf_lock *l = calloc(1, sizeof *l);
    if (!l) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        return NULL;
    }
    l->r = r;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    pf_lock_info *li = &l->info;
    my_host(li->host, sizeof li->host);
    struct passwd *pw = getpwuid(getuid());
    snprintf(li->user, sizeof li->user, "%s", pw ? pw->pw_name : "?");
    snprintf(li->command, sizeof li->command, "%s", command);
    li->pid = getpid();
    li->exclusive = exclusive;
    double deadline = (double)time(NULL) + wait_seconds;
    unsigned delay_ms = 200;
    for (;;) {
        pf_lock_info holder;
        int c = find_conflict(r, exclusive, NULL, &holder, err);
        if (c < 0)
            goto fail;
        if (c == 0) {
            li->created = (int64_t)time(NULL);
            li->expires = li->created + pf_lock_lease_seconds();
            if (write_lock(r, li, err))
                goto fail;
            /* Two processes may have looked at the same moment: look again now that ours
             * is visible, and back off on any conflict (an exclusive lock that passed this
             * second look first is already running). Both may back off; they retry after
             * randomised delays. */
            c = find_conflict(r, exclusive, li->id, &holder, err);
            if (c < 0) {
                remove_lock(r, li->id);
                goto fail;
            }
            if (c == 0)
                break;
            remove_lock(r, li->id);
        }
        if ((double)time(NULL) >= deadline) {
            pf_err_set(err, PF_ELOCKED,
                       "repository is locked %sby %s (pid %lld on %s, since %lld s): wait for "
                       "it, or if it crashed run 'permafrost unlock'",
                       holder.exclusive ? "exclusively " : "", holder.command, (long long)holder.pid,
                       holder.host, (long long)((int64_t)time(NULL) - holder.created));
            goto fail;
        }
        unsigned jitter = 0;
        pf_random(&jitter, sizeof jitter, NULL);
        unsigned sleep_ms = delay_ms / 2 + jitter % (delay_ms / 2 + 1);
        struct timespec ts = {sleep_ms / 1000, (long)(sleep_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
        if (delay_ms < 5000)
            delay_ms *= 2;
    }
    if (pthread_create(&l->thread, NULL, refresher, l) == 0)
        l->running = 1;
    return l;
fail:
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
    return NULL;
}

void pf_lock_release(pf_lock *l)
{
    if (!l)
        return;
    if (l->running) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
    }
    remove_lock(l->r, l->info.id);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

void pf_lock_abandon(pf_lock *l)
{
    if (!l)
        return;
    char id[PF_HEX_ID_LEN + 1];
    pthread_mutex_lock(&l->mu);
    memcpy(id, l->info.id, sizeof id);
    l->stop = 1;
    pthread_mutex_unlock(&l->mu);
    remove_lock(l->r, id);
}

int pf_lock_longest_lease(pf_repo *r, int64_t *seconds, pf_err *err)
{
    collect c;
    if (list_all(r, &c, err))
        return -1;
    *seconds = pf_lock_lease_seconds();
    for (size_t i = 0; i < c.n; i++)
        if (!c.v[i].stale && c.v[i].expires - c.v[i].created > *seconds)
            *seconds = c.v[i].expires - c.v[i].created;
    free(c.v);
    return 0;
}

int pf_lock_list(pf_repo *r, void (*cb)(const pf_lock_info *li, void *ctx), void *ctx,
                 pf_err *err)
{
    collect c;
    if (list_all(r, &c, err))
        return -1;
    for (size_t i = 0; i < c.n; i++)
        cb(&c.v[i], ctx);
    free(c.v);
    return 0;
}

int pf_lock_remove(pf_repo *r, bool all, void (*cb)(const pf_lock_info *li, void *ctx),
                   void *ctx, pf_err *err)
{
    collect c;
    if (list_all(r, &c, err))
        return -1;
    for (size_t i = 0; i < c.n; i++) {
        if (!all && !c.v[i].stale)
            continue;
        if (cb)
            cb(&c.v[i], ctx);
        remove_lock(r, c.v[i].id);
    }
    free(c.v);
    return 0;
}

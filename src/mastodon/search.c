#include "mastodon/search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *value_or(const pf_mastodon_env *env, const char *key, const char *dflt)
{
    const char *v = pf_mastodon_env_get(env, key);
    return v && *v ? v : dflt;
}

void pf_mastodon_search_describe(const pf_mastodon_env *env, cJSON *manifest)
{
    if (!env->es_enabled)
        return;
    cJSON *s = cJSON_AddObjectToObject(manifest, "search");
    if (!s)
        return;
    cJSON_AddStringToObject(s, "host", value_or(env, "ES_HOST", "localhost"));
    const char *port = value_or(env, "ES_PORT", "9200");
    char *end;
    long p = strtol(port, &end, 10);
    if (!*end && p > 0 && p < 65536)
        cJSON_AddNumberToObject(s, "port", (double)p);
    else
        cJSON_AddStringToObject(s, "port", port);
    const char *prefix = value_or(env, "ES_PREFIX", value_or(env, "REDIS_NAMESPACE", NULL));
    if (prefix)
        cJSON_AddStringToObject(s, "prefix", prefix);
    const char *user = value_or(env, "ES_USER", NULL);
    if (user)
        cJSON_AddStringToObject(s, "user", user);
}

const char *pf_mastodon_search_todo(const cJSON *manifest, char *buf, size_t n)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(manifest, "search");
    if (!cJSON_IsObject(s))
        return NULL;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(s, "host");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(s, "port");
    char port[32] = "?";
    if (cJSON_IsNumber(p))
        snprintf(port, sizeof port, "%d", p->valueint);
    else if (cJSON_IsString(p))
        snprintf(port, sizeof port, "%.30s", p->valuestring);
    snprintf(buf, n,
             "Rebuild the search index (it is not in the snapshot; the old server used "
             "Elasticsearch at %.200s:%s): RAILS_ENV=production bin/tootctl search deploy",
             cJSON_IsString(h) ? h->valuestring : "?", port);
    return buf;
}

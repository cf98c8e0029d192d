/* Mastodon's full-text search (ES_ENABLED=true: Elasticsearch or OpenSearch). The index
 * is not backed up: it is rebuilt from the database with `tootctl search deploy`. What a
 * snapshot records is where it was, read as config/initializers/chewy.rb reads it: ES_HOST
 * (default localhost), ES_PORT (default 9200), ES_PREFIX (default REDIS_NAMESPACE), ES_USER;
 * never ES_PASS. */
#ifndef PF_MASTODON_SEARCH_H
#define PF_MASTODON_SEARCH_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "mastodon/env.h"

/* Adds "search": {"host": ..., "port": ..., "prefix": ..., "user": ...} to manifest when
 * env has ES_ENABLED=true; nothing otherwise. */
void pf_mastodon_search_describe(const pf_mastodon_env *env, cJSON *manifest);

/* The step for "What is left to do" after a restore of a snapshot whose manifest has
 * "search", into buf; NULL when it has none. */
const char *pf_mastodon_search_todo(const cJSON *manifest, char *buf, size_t n);

#endif

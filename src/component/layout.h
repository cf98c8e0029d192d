/* The layout of a Mastodon snapshot, in one place. Each component's folder is its name
 * (component.h); these are the files inside them:
 *
 *   secrets/.env.production
 *   postgres/globals.sql, postgres/<DB_NAME>.dump
 *   redis/dump.rdb, redis/sidekiq.rdb (only when Sidekiq has a Redis of its own)
 *   media/...  (the contents of public/system or PAPERCLIP_ROOT_PATH)
 *
 * Backup order is secrets, database, Redis, media: a file uploaded during the backup is
 * then at worst an orphan in the snapshot, never a database row whose file is missing.
 * Changing a name here makes old snapshots unreadable: add, never rename. */
#ifndef PF_COMPONENT_LAYOUT_H
#define PF_COMPONENT_LAYOUT_H

#define PF_LAYOUT_SECRETS "secrets"
#define PF_LAYOUT_POSTGRES "postgres"
#define PF_LAYOUT_REDIS "redis"
#define PF_LAYOUT_MEDIA "media"

#define PF_LAYOUT_ENV_FILE ".env.production"
#define PF_LAYOUT_PG_GLOBALS "globals.sql"
#define PF_LAYOUT_PG_DUMP_SUFFIX ".dump" /* after DB_NAME */
#define PF_LAYOUT_REDIS_RDB "dump.rdb"
#define PF_LAYOUT_SIDEKIQ_RDB "sidekiq.rdb"

/* "secrets/.env.production": the one file read before any component runs. */
#define PF_LAYOUT_ENV_PATH PF_LAYOUT_SECRETS "/" PF_LAYOUT_ENV_FILE

#endif

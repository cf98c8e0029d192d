/* The layout of a Mastodon snapshot, in one place. Each component's folder is its name
 * (component.h); these are the files inside them:
 *
 *   secrets/.env.production
 *   postgres/globals.sql, postgres/<DB_NAME>.dump
 *   redis/dump.rdb, redis/sidekiq.rdb (only when Sidekiq has a Redis of its own)
 *   media/...  (the contents of public/system or PAPERCLIP_ROOT_PATH)
 *   host/...   (files of the machine, at their paths below the host root:
 *               host/etc/letsencrypt/..., host/etc/nginx/sites-available/<site>,
 *               host/etc/nginx/sites-enabled/<link>, host/etc/systemd/system/mastodon-*.service
 *               and mastodon-*.service.d/, host/var/spool/cron/crontabs/mastodon; the
 *               directories on the way are virtual, never restored themselves)
 *
 * Backup order is secrets, database, Redis, media, host: a file uploaded during the backup is
 * then at worst an orphan in the snapshot, never a database row whose file is missing.
 * Changing a name here makes old snapshots unreadable: add, never rename. */
#ifndef PF_COMPONENT_LAYOUT_H
#define PF_COMPONENT_LAYOUT_H

#define PF_LAYOUT_SECRETS "secrets"
#define PF_LAYOUT_POSTGRES "postgres"
#define PF_LAYOUT_REDIS "redis"
#define PF_LAYOUT_MEDIA "media"
#define PF_LAYOUT_HOST "host"

#define PF_LAYOUT_ENV_FILE ".env.production"
#define PF_LAYOUT_PG_GLOBALS "globals.sql"
#define PF_LAYOUT_PG_DUMP_SUFFIX ".dump" /* after DB_NAME */
/* ... or, dumped with pg_dump -Fd -j N (pg_dump_jobs), a folder of its files */
#define PF_LAYOUT_PG_DIR_SUFFIX ".dir"
#define PF_LAYOUT_REDIS_RDB "dump.rdb"
#define PF_LAYOUT_SIDEKIQ_RDB "sidekiq.rdb"

/* Inside host/, relative to the host root (host.h says which of their entries are kept). */
#define PF_LAYOUT_HOST_LETSENCRYPT "etc/letsencrypt"
#define PF_LAYOUT_HOST_NGINX_AVAILABLE "etc/nginx/sites-available"
#define PF_LAYOUT_HOST_NGINX_ENABLED "etc/nginx/sites-enabled"
#define PF_LAYOUT_HOST_SYSTEMD "etc/systemd/system"
#define PF_LAYOUT_HOST_CRONTABS "var/spool/cron/crontabs"
#define PF_LAYOUT_HOST_CRONTAB PF_LAYOUT_HOST_CRONTABS "/mastodon"

/* "secrets/.env.production": the one file read before any component runs. */
#define PF_LAYOUT_ENV_PATH PF_LAYOUT_SECRETS "/" PF_LAYOUT_ENV_FILE

#endif

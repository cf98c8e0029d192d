# A small Mastodon-shaped server for tests: a PostgreSQL cluster and a Redis on loopback
# ports, and a live/ directory. Source this file, then:
#   mastodon_up DIR      start servers in DIR and fill them: roles mastodon (owner, with a
#                        password) and mastodon_readonly, database mastodon_production with
#                        Mastodon-like tables, sequences, indexes, pg_trgm, a large object;
#                        Redis keys of every type (Sidekiq queues, home feeds, a key with a
#                        TTL); DIR/live/.env.production (0600) and DIR/live/public/system.
#   mastodon_blank DIR   empty servers (no mastodon role, no database, empty Redis) and an
#                        empty DIR/live: a new machine to restore onto.
#   mastodon_digest DIR  print the state, one line per thing; two servers holding the same
#                        Mastodon print the same lines.
#   mastodon_churn DIR   a busy day: new posts and follows, new uploads, an expired cache
#                        file, Sidekiq jobs done and queued.
# After mastodon_up/blank, DIR/mastodon.env holds PG_PORT, PG_SOCK, REDIS_PORT, LIVE,
# MASTODON_DB_PASS (plus pg.env and redis.env). Everything stops when the shell exits.
. "$(dirname "${BASH_SOURCE[0]}")/pg.sh"
. "$(dirname "${BASH_SOURCE[0]}")/redis.sh"

MASTODON_DB_PASS='harness db pass: #$&'

mastodon_servers() {
    local dir=$1
    mkdir -p "$dir"
    pg_start "$dir" || return 1
    if [ -n "${MASTODON_REDIS_PASS:-}" ]; then
        redis_start "$dir" --pass "$MASTODON_REDIS_PASS" || return 1
    else
        redis_start "$dir" || return 1
    fi
    mkdir -p "$dir/live"
    cat >"$dir/mastodon.env" <<EOV
PG_PORT=$PG_PORT
PG_SOCK=$PG_SOCK
REDIS_PORT=$REDIS_PORT
LIVE=$dir/live
MASTODON_DB_PASS='$MASTODON_DB_PASS'
EOV
}

mastodon_blank() {
    mastodon_servers "$1"
}

mastodon_schema_sql() {
    cat <<'EOS'
CREATE EXTENSION pg_trgm;
CREATE TABLE accounts (
  id bigserial PRIMARY KEY,
  username varchar NOT NULL,
  domain varchar,
  display_name varchar NOT NULL DEFAULT '',
  note text NOT NULL DEFAULT '',
  fields jsonb,
  locked boolean NOT NULL DEFAULT false,
  created_at timestamp NOT NULL,
  updated_at timestamp NOT NULL
);
CREATE UNIQUE INDEX index_accounts_on_username_and_domain_lower
  ON accounts (lower(username), COALESCE(lower(domain), ''));
CREATE INDEX index_accounts_on_display_name_trgm ON accounts USING gin (display_name gin_trgm_ops);
CREATE TABLE users (
  id bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  email varchar NOT NULL,
  encrypted_password varchar NOT NULL DEFAULT '',
  otp_secret varchar,
  created_at timestamp NOT NULL,
  updated_at timestamp NOT NULL
);
CREATE UNIQUE INDEX index_users_on_email ON users (email);
CREATE TABLE statuses (
  id bigint PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  text text NOT NULL DEFAULT '',
  in_reply_to_id bigint,
  visibility integer NOT NULL DEFAULT 0,
  language varchar,
  ordered_media_attachment_ids bigint[],
  created_at timestamp NOT NULL,
  updated_at timestamp NOT NULL
);
CREATE INDEX index_statuses_on_account_id_id ON statuses (account_id, id DESC);
CREATE TABLE follows (
  id bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  target_account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  created_at timestamp NOT NULL
);
CREATE UNIQUE INDEX index_follows_on_pair ON follows (account_id, target_account_id);
CREATE TABLE media_attachments (
  id bigserial PRIMARY KEY,
  status_id bigint REFERENCES statuses (id) ON DELETE SET NULL,
  account_id bigint REFERENCES accounts (id) ON DELETE SET NULL,
  file_file_name varchar,
  file_content_type varchar,
  file_file_size integer,
  file_meta json,
  created_at timestamp NOT NULL
);
CREATE TABLE site_uploads (
  id bigserial PRIMARY KEY,
  var varchar NOT NULL,
  blob oid
);
CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
EOS
}

mastodon_data_sql() {
    cat <<'EOS'
INSERT INTO accounts (username, domain, display_name, note, fields, locked, created_at, updated_at)
SELECT 'user' || g, CASE WHEN g % 3 = 0 THEN 'remote' || (g % 7) || '.example' END,
       'User Ñumber ' || g, 'bio of ' || g || E' with\ttab and ''quote''',
       jsonb_build_array(jsonb_build_object('name', 'site', 'value', 'https://x.example/' || g)),
       g % 10 = 0, timestamp '2023-01-01' + g * interval '1 hour', timestamp '2024-01-01' + g * interval '1 minute'
FROM generate_series(1, 60) g;
INSERT INTO users (account_id, email, encrypted_password, otp_secret, created_at, updated_at)
SELECT id, username || '@mail.example', md5(username), CASE WHEN id % 4 = 0 THEN md5('otp' || id) END, created_at, updated_at
FROM accounts WHERE domain IS NULL;
INSERT INTO statuses (id, account_id, text, in_reply_to_id, visibility, language, created_at, updated_at)
SELECT (110000000000000000 + g * 65536), 1 + g % 60, '<p>post ' || g || ' ' || repeat(md5(g::text), g % 5) || '</p>',
       CASE WHEN g % 4 = 0 THEN 110000000000000000 + (g - 1) * 65536 END, g % 4, (ARRAY['en','de','ja',NULL])[1 + g % 4],
       timestamp '2024-02-01' + g * interval '5 minutes', timestamp '2024-02-01' + g * interval '5 minutes'
FROM generate_series(1, 500) g;
INSERT INTO follows (account_id, target_account_id, created_at)
SELECT 1 + (g * 7) % 60, 1 + (g * 13 + 5) % 60, timestamp '2024-03-01' + g * interval '1 second'
FROM generate_series(1, 300) g WHERE (g * 7) % 60 <> (g * 13 + 5) % 60
ON CONFLICT DO NOTHING;
INSERT INTO media_attachments (status_id, account_id, file_file_name, file_content_type, file_file_size, file_meta, created_at)
SELECT 110000000000000000 + g * 65536, 1 + g % 60, 'x' || g || '.jpg', 'image/jpeg', 1000 + g, '{"original":{"width":640}}',
       timestamp '2024-02-02' + g * interval '1 minute'
FROM generate_series(1, 40) g;
UPDATE statuses s SET ordered_media_attachment_ids = ARRAY[m.id] FROM media_attachments m WHERE m.status_id = s.id;
INSERT INTO site_uploads (var, blob) VALUES ('thumbnail', lo_from_bytea(0, decode(repeat('89504e470d0a1a0a', 64), 'hex')));
SELECT setval('accounts_id_seq', 1000);
INSERT INTO schema_migrations VALUES ('20230101000000'), ('20240101000000'), ('20240301000000');
GRANT SELECT ON ALL TABLES IN SCHEMA public TO mastodon_readonly;
EOS
}

# A file of `size` pseudo-random bytes, with mode and mtime.
mastodon_file() {
    local path=$1 size=$2 mode=$3 mtime=$4
    mkdir -p "$(dirname "$path")"
    head -c "$size" /dev/urandom >"$path"
    chmod "$mode" "$path"
    touch -d "@$mtime" "$path"
}

mastodon_media() {
    local sys=$1
    mastodon_file "$sys/media_attachments/files/000/000/001/original/a1b2c3d4.jpg" 30000 644 1700000000
    mastodon_file "$sys/media_attachments/files/000/000/001/small/a1b2c3d4.jpg" 4000 644 1700000001
    mastodon_file "$sys/media_attachments/files/000/000/002/original/e5f6.mp4" 120000 640 1700000500
    mastodon_file "$sys/accounts/avatars/000/000/001/original/avatar.png" 9000 644 1690000000
    mastodon_file "$sys/accounts/avatars/000/000/001/static/avatar.png" 2000 600 1690000000
    mastodon_file "$sys/accounts/headers/000/000/003/original/header.jpg" 15000 644 1695000000
    mastodon_file "$sys/cache/media_attachments/files/109/000/000/original/remote1.jpg" 50000 644 1710000000
    mastodon_file "$sys/cache/media_attachments/files/109/000/001/original/remote2.jpg" 20000 644 1710000100
    mastodon_file "$sys/cache/accounts/avatars/108/000/000/original/remote.png" 7000 644 1710000200
    mastodon_file "$sys/site_uploads/files/000/000/001/original/thumbnail.png" 512 644 1680000000
    printf '' >"$sys/media_attachments/files/000/000/002/original/empty.bin"
    touch -d @1700000600 "$sys/media_attachments/files/000/000/002/original/empty.bin"
    # Mastodon's files belong to the mastodon user, not to whoever restores them.
    if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
        chown -h nobody: "$sys/accounts/avatars/000/000/001/original/avatar.png" \
            "$sys/media_attachments/files/000/000/001/small/a1b2c3d4.jpg"
    fi
}

mastodon_env_file() {
    local dir=$1
    local -a r
    mapfile -t r < <(head -c 240 /dev/urandom | od -An -tx1 -w40 | tr -d ' ')
    cat >"$dir/live/.env.production" <<EOV
# Generated by the permafrost test harness
LOCAL_DOMAIN=harness.example
SINGLE_USER_MODE=false
SECRET_KEY_BASE=${r[0]}${r[1]}
OTP_SECRET=${r[2]}${r[3]}
ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY=${r[4]}
ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=${r[5]}
ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=${r[0]}
VAPID_PRIVATE_KEY=${r[1]}
VAPID_PUBLIC_KEY=B${r[2]}
export DB_HOST=127.0.0.1
DB_PORT=$PG_PORT
DB_NAME=mastodon_production
DB_USER=mastodon
DB_PASS="$(printf '%s' "$MASTODON_DB_PASS" | sed 's/[\\"$]/\\&/g')"
REDIS_HOST=127.0.0.1
REDIS_PORT=$REDIS_PORT
${MASTODON_REDIS_PASS:+REDIS_PASSWORD=$MASTODON_REDIS_PASS}
S3_ENABLED=false
ES_ENABLED=false
SMTP_PASSWORD='${r[3]}'
EOV
    chmod 600 "$dir/live/.env.production"
}

mastodon_up() {
    local dir=$1
    mastodon_servers "$dir" || return 1
    pg_psql "$dir" -d postgres \
        -c "CREATE ROLE mastodon LOGIN CREATEDB PASSWORD '$(printf '%s' "$MASTODON_DB_PASS" | sed "s/'/''/g")'" \
        -c "CREATE ROLE mastodon_readonly" \
        -c "CREATE DATABASE mastodon_production OWNER mastodon TEMPLATE template0" \
        -c "GRANT CONNECT ON DATABASE mastodon_production TO mastodon_readonly" || return 1
    # Extensions as the superuser, like Mastodon's setup; tables as mastodon, the owner.
    pg_psql "$dir" -d mastodon_production -c "CREATE EXTENSION pg_trgm" || return 1
    (
        . "$dir/pg.env"
        mastodon_schema_sql | sed '/CREATE EXTENSION/d' |
            PGPASSWORD=$MASTODON_DB_PASS "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 \
                -p "$PG_PORT" -U mastodon -d mastodon_production &&
            mastodon_data_sql |
            PGPASSWORD=$MASTODON_DB_PASS "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 \
                -p "$PG_PORT" -U mastodon -d mastodon_production >/dev/null
    ) || return 1
    local i
    {
        for i in $(seq 1 5 60); do
            echo "ZADD feed:home:$i $((i * 10)) $((110000000000000000 + i * 65536)) $((i * 10 + 1)) $((110000000000000000 + i * 65536 + 1))"
        done
        for i in $(seq 20); do
            echo "LPUSH queue:default '{\"class\":\"LinkCrawlWorker\",\"args\":[$i],\"jid\":\"jid$i\"}'"
        done
        echo "LPUSH queue:push '{\"class\":\"ActivityPub::DeliveryWorker\",\"args\":[\"x\"]}'"
        echo "ZADD retry 1700000000 '{\"class\":\"X\",\"retry_count\":2}'"
        echo "ZADD schedule 1800000000 '{\"class\":\"Scheduler::Y\"}'"
        echo "HSET sidekiq:stats processed 12345 failed 7"
        echo "SET stat:processed 12345"
        echo "SADD queues default push mailers"
        echo "SET binary:key \"\\x00\\xff\\r\\n\""
        echo "SET session:abc token EX 86400"
        echo "SELECT 1"
        echo "SET other-db-key value"
    } | redis_cli "$dir" >/dev/null || return 1
    mastodon_media "$dir/live/public/system"
    mastodon_env_file "$dir"
}

mastodon_churn() {
    local dir=$1
    (
        . "$dir/pg.env"
        PGPASSWORD=$MASTODON_DB_PASS "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 \
            -p "$PG_PORT" -U mastodon -d mastodon_production <<'EOS'
INSERT INTO statuses (id, account_id, text, visibility, created_at, updated_at)
SELECT (120000000000000000 + g * 65536), 1 + g % 60, '<p>new post ' || g || '</p>', 0, now(), now()
FROM generate_series(1, 25) g;
INSERT INTO follows (account_id, target_account_id, created_at) VALUES (2, 59, now()) ON CONFLICT DO NOTHING;
UPDATE accounts SET note = note || ' (edited)', updated_at = now() WHERE id % 10 = 3;
DELETE FROM media_attachments WHERE id = 7;
EOS
    ) || return 1
    redis_cli "$dir" rpop queue:default >/dev/null
    redis_cli "$dir" lpush queue:mailers '{"class":"ActionMailer::MailDeliveryJob"}' >/dev/null
    redis_cli "$dir" zadd feed:home:1 99999 130000000000000000 >/dev/null
    local sys=$dir/live/public/system
    mastodon_file "$sys/media_attachments/files/000/000/003/original/new.jpg" 25000 644 1720000000
    mastodon_file "$sys/cache/media_attachments/files/109/000/002/original/remote3.jpg" 8000 644 1720000100
    rm -f "$sys/cache/media_attachments/files/109/000/000/original/remote1.jpg"
}

# One line per table (row count + md5 of its rows in order), sequences, indexes, large
# objects, extensions, roles and ownership, Redis keys, the secrets file and media files.
mastodon_digest() {
    local dir=$1
    (
        set +e # a server that lacks something prints less, it does not stop the digest
        . "$dir/pg.env"
        . "$dir/redis.env"
        if [ "${PG_PEER:-0}" = 1 ]; then
            q() { pg_peer_psql "$dir" postgres -At "$@" 2>/dev/null; }
        else
            q() { PGPASSWORD=$PG_SUPERPASS "$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@" 2>/dev/null; }
        fi
        echo "# database"
        q -d postgres -c "SELECT 'database ' || datname || ' owner=' || pg_get_userbyid(datdba) || ' encoding=' || pg_encoding_to_char(encoding) || ' acl=' || coalesce(datacl::text, '') FROM pg_database WHERE datname = 'mastodon_production'"
        local t
        for t in $(q -d mastodon_production -c "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"); do
            q -d mastodon_production -c "SELECT 'table $t rows=' || count(*) || ' md5=' || coalesce(md5(string_agg(x::text, E'\n' ORDER BY x::text)), '-') FROM $t x"
        done
        q -d mastodon_production -c "SELECT 'owner ' || c.relkind::text || ' ' || c.relname || ' ' || pg_get_userbyid(c.relowner) || ' acl=' || coalesce(c.relacl::text, '') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY c.relname"
        q -d mastodon_production -c "SELECT 'sequence ' || sequencename || ' last=' || coalesce(last_value::text, 'null') FROM pg_sequences ORDER BY 1"
        q -d mastodon_production -c "SELECT 'index ' || indexname || ' ' || md5(indexdef) FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
        q -d mastodon_production -c "SELECT 'largeobject ' || m.oid || ' owner=' || pg_get_userbyid(m.lomowner) || ' md5=' || md5(lo_get(m.oid)) FROM pg_largeobject_metadata m ORDER BY m.oid"
        q -d mastodon_production -c "SELECT 'extension ' || extname || ' ' || extversion || ' owner=' || pg_get_userbyid(extowner) FROM pg_extension ORDER BY 1"
        q -d postgres -c "SELECT 'role ' || rolname || ' super=' || rolsuper || ' login=' || rolcanlogin || ' createdb=' || rolcreatedb || ' password=' || (rolpassword IS NOT NULL) FROM pg_authid WHERE rolname LIKE 'mastodon%' ORDER BY 1"
        if [ "${PG_PEER:-0}" = 1 ]; then
            if pg_peer_psql "$dir" mastodon -At -d mastodon_production -c 'SELECT 1' >/dev/null 2>&1; then
                echo "login mastodon as the OS user mastodon (peer): ok"
            else
                echo "login mastodon as the OS user mastodon (peer): FAILED"
            fi
        elif PGPASSWORD=$MASTODON_DB_PASS "$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$PG_PORT" -U mastodon -d mastodon_production -c 'SELECT 1' >/dev/null 2>&1; then
            echo "login mastodon with DB_PASS: ok"
        else
            echo "login mastodon with DB_PASS: FAILED"
        fi
        echo "# redis"
        local db key type val ttl
        for db in $(redis_cli "$dir" info keyspace | sed -n 's/^db\([0-9]*\):.*/\1/p' | sort -n); do
            redis_cli "$dir" -n "$db" --scan | LC_ALL=C sort | while IFS= read -r key; do
                type=$(redis_cli "$dir" -n "$db" type "$key")
                case "$type" in
                    string) val=$(redis_cli "$dir" -n "$db" --no-raw get "$key") ;;
                    list) val=$(redis_cli "$dir" -n "$db" --no-raw lrange "$key" 0 -1) ;;
                    hash) val=$(redis_cli "$dir" -n "$db" --no-raw hgetall "$key" | paste - - | LC_ALL=C sort) ;;
                    set) val=$(redis_cli "$dir" -n "$db" --no-raw smembers "$key" | sed "s/^ *[0-9]*) //" | LC_ALL=C sort) ;;
                    zset) val=$(redis_cli "$dir" -n "$db" --no-raw zrange "$key" 0 -1 withscores) ;;
                    *) val=? ;;
                esac
                ttl=$(redis_cli "$dir" -n "$db" ttl "$key")
                [ "$ttl" -ge 0 ] 2>/dev/null && ttl=ttl || ttl=nottl
                echo "redis db$db $key $type $(printf '%s' "$val" | md5sum | cut -c1-16) $ttl"
            done
        done
        echo "# secrets"
        local envf=$dir/live/.env.production
        if [ -f "$envf" ]; then
            # A restore onto other servers writes their ports into the file (and nothing
            # else): a port that names this server's own reads the same everywhere, a stale
            # one does not.
            echo "secrets .env.production $(sed -e "s/^DB_PORT=$PG_PORT\$/DB_PORT=<this server>/" \
                -e "s/^REDIS_PORT=$REDIS_PORT\$/REDIS_PORT=<this server>/" \
                -e "s|^DB_HOST=$PG_SOCK\$|DB_HOST=<this server>|" "$envf" |
                sha256sum | cut -c1-16) $(stat -c '%a %U:%G' "$envf")"
            echo "secrets live/ $(stat -c '%U:%G' "$dir/live")"
        else
            echo "secrets .env.production missing"
        fi
        echo "# media"
        if [ -d "$dir/live/public/system" ]; then
            echo "media public/system $(stat -c '%a %U:%G' "$dir/live/public/system")"
            (cd "$dir/live/public/system" && find . -mindepth 1 -type f -print0 | LC_ALL=C sort -z |
                while IFS= read -r -d '' f; do
                    echo "media ${f#./} $(sha256sum <"$f" | cut -c1-16) $(stat -c '%a %Y %U:%G' "$f")"
                done)
        fi
    )
}

# ---- Mastodon's standard install (tests run as root) -----------------------------------------
#   standard_user        the OS user `mastodon` exists (a system account, created once and
#                        kept: other tests and runs share it)
#   standard_up DIR      PostgreSQL with peer authentication only (pg_start_peer: socket in
#                        DIR/pgrun, no TCP, no password anywhere); the role made as the guide
#                        does (`CREATE USER mastodon CREATEDB;`), the database and its tables
#                        made by the OS user mastodon; a role with a password (only a
#                        superuser can dump it); Redis on loopback, no password;
#                        DIR/live owned by mastodon, with .env.production (0600 mastodon,
#                        DB_HOST=DIR/pgrun, no DB_PASS) and public/system owned by mastodon.
#   standard_blank DIR   the same servers, empty, and no DIR/live at all: a fresh machine.
# mastodon_digest works on both (it sees PG_PEER=1 in DIR/pg.env).
standard_user() {
    id mastodon >/dev/null 2>&1 && return 0
    useradd --system --user-group --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin mastodon 2>/dev/null
    id mastodon >/dev/null 2>&1 # another job may have made it meanwhile
}

standard_servers() {
    local dir=$1
    standard_user || { echo "standard: cannot create the OS user mastodon" >&2; return 1; }
    mkdir -p "$dir"
    pg_start_peer "$dir" || return 1
    redis_start "$dir" || return 1
    cat >"$dir/mastodon.env" <<EOV
PG_PORT=$PG_PORT
PG_SOCK=$PG_SOCK
REDIS_PORT=$REDIS_PORT
LIVE=$dir/live
EOV
}

standard_blank() {
    standard_servers "$1"
}

standard_up() {
    local dir=$1
    standard_servers "$dir" || return 1
    pg_peer_psql "$dir" postgres -d postgres -c "CREATE USER mastodon CREATEDB;" \
        -c "CREATE ROLE mastodon_readonly LOGIN PASSWORD 'readonly pw only a superuser reads'" ||
        return 1
    pg_peer_psql "$dir" mastodon -d postgres -c "CREATE DATABASE mastodon_production TEMPLATE template0" ||
        return 1
    pg_peer_psql "$dir" postgres -d mastodon_production -c "CREATE EXTENSION pg_trgm" || return 1
    { mastodon_schema_sql | sed '/CREATE EXTENSION/d'; mastodon_data_sql; } |
        pg_peer_psql "$dir" mastodon -d mastodon_production >/dev/null || return 1
    echo "SET stat:processed 12345
LPUSH queue:default '{\"class\":\"LinkCrawlWorker\",\"args\":[1]}'
ZADD feed:home:1 10 110000000000065536" | redis_cli "$dir" >/dev/null || return 1
    mkdir -p "$dir/live"
    mastodon_media "$dir/live/public/system"
    local -a r
    mapfile -t r < <(head -c 120 /dev/urandom | od -An -tx1 -w40 | tr -d ' ')
    cat >"$dir/live/.env.production" <<EOV
# Generated by the permafrost test harness: Mastodon's standard install
LOCAL_DOMAIN=standard.example
SECRET_KEY_BASE=${r[0]}${r[1]}
OTP_SECRET=${r[2]}
DB_HOST=$dir/pgrun
DB_USER=mastodon
DB_NAME=mastodon_production
DB_PASS=
DB_PORT=5432
REDIS_HOST=127.0.0.1
REDIS_PORT=$REDIS_PORT
S3_ENABLED=false
EOV
    chmod 600 "$dir/live/.env.production"
    # The guide clones live/ as mastodon: everything in it is mastodon's (the one file
    # mastodon_media gives to nobody stays so, to tell owners apart).
    chown -R mastodon: "$dir/live"
    chown -h nobody: "$dir/live/public/system/accounts/avatars/000/000/001/original/avatar.png"
}

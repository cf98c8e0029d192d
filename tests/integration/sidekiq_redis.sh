#!/usr/bin/env bash
# A Mastodon whose Sidekiq queues live in a Redis of their own (SIDEKIQ_REDIS_URL):
# backup --live takes both Redis servers, restore --live puts each back where it belongs.
set -euo pipefail
PF=${PERMAFROST:-$PWD/permafrost}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../harness/mastodon.sh"
T=$(mktemp -d /tmp/pf-sidekiq.XXXXXX)
chmod 755 "$T"
harness_on_exit rm -rf "$T"
export PERMAFROST_PASSWORD=sidekiq-test PERMAFROST_CONFIG=/dev/null
fail() { echo "FAIL: $*"; exit 1; }

mastodon_up "$T/old"
redis_start "$T/old/sk"
SK_PORT=$(. "$T/old/sk/redis.env"; echo "$REDIS_PORT")
redis_cli "$T/old/sk" LPUSH queue:default '{"class":"ImportantWorker"}' >/dev/null
redis_cli "$T/old/sk" SET sidekiq-only yes >/dev/null
echo "SIDEKIQ_REDIS_URL=redis://127.0.0.1:$SK_PORT/0" >>"$T/old/live/.env.production"
. "$T/old/mastodon.env"
"$PF" --repo "$T/repo" init -q
"$PF" --repo "$T/repo" backup -q --live "$LIVE" || fail "backup with a separate Sidekiq Redis"
"$PF" --repo "$T/repo" ls latest redis | grep -q '/redis/sidekiq.rdb' || fail "sidekiq.rdb not in the snapshot"
echo "ok: both Redis servers in the snapshot"

# The new machine: the Sidekiq Redis comes back on the same port (the .env says so).
redis_stop "$T/old/sk"
mastodon_blank "$T/new"
mkdir -p "$T/new/sk"
redis-server --port "$SK_PORT" --bind 127.0.0.1 --dir "$T/new/sk" --daemonize yes \
    --pidfile "$T/new/sk/pid" --save '' >/dev/null
harness_on_exit "kill \$(cat '$T/new/sk/pid') 2>/dev/null || true"
# Bounded but generous: a loaded machine can take seconds to start it.
for _ in $(seq 300); do redis-cli -p "$SK_PORT" ping 2>/dev/null | grep -qx PONG && break; sleep 0.1; done
[ "$(redis-cli -p "$SK_PORT" ping 2>/dev/null)" = PONG ] || fail "the new machine's Sidekiq Redis did not start"
. "$T/new/mastodon.env"
. "$T/new/pg.env"
PERMAFROST_PG_ADMIN_PASSWORD=$PG_SUPERPASS "$PF" --repo "$T/repo" restore -q latest --live "$LIVE" \
    --pg-host 127.0.0.1 --pg-port "$PG_PORT" --pg-admin-user "$PG_SUPERUSER" \
    --redis-host 127.0.0.1 --redis-port "$(. "$T/new/redis.env"; echo "$REDIS_PORT")" \
    || fail "restore with a separate Sidekiq Redis"
[ "$(redis-cli -p "$SK_PORT" GET sidekiq-only)" = yes ] || fail "Sidekiq Redis key not restored"
[ "$(redis-cli -p "$SK_PORT" LLEN queue:default)" = 1 ] || fail "Sidekiq queue not restored"
echo "ok: Sidekiq's own Redis restored"

#!/usr/bin/env bash
# The README's first command: a throwaway Mastodon-shaped server (real PostgreSQL, Redis and
# a live/ directory, on loopback ports, under a temporary directory) is backed up to a local
# repository, destroyed, restored onto blank servers, and the restore is proven exact.
set -euo pipefail
cd "$(dirname "$0")/.."
PF=${PERMAFROST:-$PWD/permafrost}
. tests/harness/mastodon.sh

T=$(mktemp -d /tmp/permafrost-demo.XXXXXX)
chmod 755 "$T"
harness_on_exit rm -rf "$T"
export PERMAFROST_PASSWORD=demo-passphrase-$RANDOM$RANDOM
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/6 starting a throwaway Mastodon server (PostgreSQL, Redis, live/) in $T/old"
mastodon_up "$T/old"
. "$T/old/mastodon.env"
mastodon_digest "$T/old" >"$T/before.digest"
echo "   $(grep -c . "$T/before.digest") things recorded in its digest (tables, sequences, large objects, roles, Redis keys, secrets, media)"

step "2/6 backing it up to a local repository"
"$PF" --repo "$T/repo" init
"$PF" --repo "$T/repo" backup --live "$LIVE"
"$PF" --repo "$T/repo" snapshots

step "3/6 destroying the server: stopping PostgreSQL and Redis, deleting everything"
pg_kill "$T/old" || true
redis_stop "$T/old" || true
rm -rf "$T/old"
echo "   gone: $(ls "$T")"

step "4/6 a new machine: blank PostgreSQL and Redis, an empty live/"
mastodon_blank "$T/new"
. "$T/new/mastodon.env"
. "$T/new/pg.env"

step "5/6 permafrost restore latest --live $LIVE"
PERMAFROST_PG_ADMIN_PASSWORD=$PG_SUPERPASS "$PF" --repo "$T/repo" restore latest --live "$LIVE" \
    --pg-host 127.0.0.1 --pg-port "$PG_PORT" --pg-admin-user "$PG_SUPERUSER" \
    --redis-host 127.0.0.1 --redis-port "$REDIS_PORT"

step "6/6 proof: the digest of the restored server against the original"
mastodon_digest "$T/new" >"$T/after.digest"
if diff -u "$T/before.digest" "$T/after.digest"; then
    echo "   identical: $(grep -c . "$T/after.digest") lines (every table's rows, sequences, large objects, roles, extensions, Redis keys and values, secrets, media bytes and metadata)"
    "$PF" --repo "$T/repo" check --read-data
    printf '\n\033[1mdemo passed: the server came back exactly.\033[0m\n'
else
    echo "demo FAILED: the restored server differs (see above)" >&2
    exit 1
fi

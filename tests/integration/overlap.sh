#!/usr/bin/env bash
# The whole-server backup and restore run their components at once (issue 15), against the
# harness's Mastodon-shaped server:
#   overlap: Redis and the media are read while pg_dump runs (a pg_dump that waits until
#   Redis has served a full sync, which a one-after-another backup never lets happen), and
#   the result is consistent: the media check finds every file the rows name, a restore
#   onto blank servers (all components at once) has the source's digest;
#   dump reuse: an unchanged database keeps the parent's dump (no pg_dump runs, the snapshot
#   names where the dump came from, a chain names the first) and restores exactly; one row
#   changed, a sequence moved by nextval() alone, a transaction in progress, --fresh-dump:
#   pg_dump runs again;
#   a parallel dump (--pg-dump-jobs 2): refused when TMPDIR lacks the room it states, else
#   stored file by file (nothing left behind), checked, restored exactly, and reused;
#   a failing component stops nothing else on restore: the report names it and lists what
#   was restored.
set -uo pipefail

SRC=${PF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PF=${PERMAFROST:-$SRC/permafrost}
. "$SRC/tests/harness/mastodon.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/pf-overlap.XXXXXX")
chmod 755 "$T"
harness_on_exit "rm -rf '$T'"
export PERMAFROST_PASSWORD=overlap-test-passphrase
export PERMAFROST_CACHE_DIR=$T/cache
REPO=$T/repo
L=$T/log
mkdir -p "$L"
. "$SRC/tests/lib/counting.sh"
# the last snapshot's field: snap EXPR (EXPR indexes s, the snapshot's JSON)
snap() {
    "$PF" --repo "$REPO" --json snapshots 2>/dev/null |
        python3 -c "import json,sys; s=json.load(sys.stdin)[-1]; print($1)" 2>&1
}
started3() {
    local var=$1 fn=$2 base=$3 n
    for n in 1 2 3; do
        if "$fn" "$base.$n" >"$T/start.log" 2>&1; then
            printf -v "$var" '%s' "$base.$n"
            return 0
        fi
    done
    cat "$T/start.log"
    return 1
}
started3 OLD mastodon_up "$T/old" || die "cannot start the source server"
started3 NEW mastodon_blank "$T/new" || die "cannot start the blank target servers"
psql_app() {
    (
        . "$OLD/pg.env"
        PGPASSWORD=$MASTODON_DB_PASS "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 \
            -p "$PG_PORT" -U mastodon -d mastodon_production "$@"
    )
}
sync_full() { redis_cli "$OLD" info stats | tr -d '\r' | sed -n 's/^sync_full://p'; }
restore_to() {
    (
        . "$NEW/pg.env"
        . "$NEW/redis.env"
        PERMAFROST_PG_ADMIN_PASSWORD=$PG_SUPERPASS "$PF" --repo "$REPO" restore latest \
            --live "$NEW/live" --pg-host 127.0.0.1 --pg-port "$PG_PORT" \
            --pg-admin-user "$PG_SUPERUSER" --redis-host 127.0.0.1 --redis-port "${1:-$REDIS_PORT}"
    )
}
wipe() {
    pg_psql "$NEW" -d postgres -c "DROP DATABASE IF EXISTS mastodon_production WITH (FORCE)" \
        -c "DROP ROLE IF EXISTS mastodon" -c "DROP ROLE IF EXISTS mastodon_readonly" >/dev/null 2>&1 ||
        die "cannot wipe the target database"
    redis_cli "$NEW" flushall >/dev/null || die "cannot flush the target Redis"
    rm -rf "$NEW/live"
    mkdir -p "$NEW/live"
}

# A pg_dump that logs each data dump and, with $T/wait present, holds it until Redis has
# served one more full sync than before the backup (at most 30 s: then it fails the dump).
mkdir -p "$T/bin"
cat >"$T/bin/pg_dump" <<EOS
#!/bin/sh
case " \$* " in
*" --snapshot="*)
    echo "dump \$*" >>"$T/dumps.log"
    if [ -f "$T/wait" ]; then
        n=0
        while [ "\$(REDISCLI_AUTH="\$(. "$OLD/redis.env"; echo "\$REDIS_PASS")" redis-cli --no-auth-warning -h 127.0.0.1 -p "\$(. "$OLD/redis.env"; echo "\$REDIS_PORT")" info stats | tr -d '\r' | sed -n 's/^sync_full://p')" -le "\$(cat "$T/wait")" ]; do
            n=\$((n + 1))
            [ \$n -le 600 ] || { echo "pg_dump: Redis was not read while the dump ran" >&2; exit 9; }
            sleep 0.05
        done
    fi
    ;;
esac
exec "$HARNESS_PGBIN/pg_dump" "\$@"
EOS
chmod 755 "$T/bin/pg_dump"
ln -s "$HARNESS_PGBIN/pg_dumpall" "$T/bin/pg_dumpall"
backup() { PERMAFROST_PG_BINDIR=$T/bin "$PF" --repo "$REPO" backup --live "$OLD/live" "$@"; }
dumps() { [ -f "$T/dumps.log" ] && wc -l <"$T/dumps.log" || echo 0; }

run init "$PF" --repo "$REPO" init
rc_is 0 "init"

# ---- overlap ---------------------------------------------------------------------------------
sync_full >"$T/wait"
run backup1 backup
rc_is 0 "backup --live while pg_dump waits for Redis to be read (the dump and the rest overlap)"
rm -f "$T/wait"
[ "$(snap 's["components"]["media"]["status"]')" = ok ] && ok "media complete" ||
    fail "media: $(snap 's["components"]["media"]')"
[ "$(snap 's["media_check"]["missing"]')" = 0 ] && [ "$(snap 's["complete"]')" = True ] &&
    ok "media check: no file the rows name is missing" || fail "media check: $(snap 's["media_check"]')"
S1=$(snap 's["id"]')
[ -n "$(snap 's["components"]["postgres"].get("dump_state", "")')" ] &&
    ok "the dump's state is recorded" || fail "no dump_state: $(snap 's["components"]["postgres"]')"
mastodon_digest "$OLD" >"$T/d1"
run restore1 restore_to
rc_is 0 "restore onto blank servers, every component at once"
mastodon_digest "$NEW" >"$T/d1.new"
same "the restored server has the source's digest" "$T/d1" "$T/d1.new"

# ---- dump reuse ------------------------------------------------------------------------------
# Autovacuum's ANALYZE takes a transaction id, in any database of the cluster, whenever it
# decides to: rightly a fresh dump, but not at a moment this test can choose. It is turned
# off and what the load left is settled; one backup then records the quiet database.
pg_psql "$OLD" -d postgres -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" \
    >/dev/null || die "cannot turn autovacuum off"
pg_psql "$OLD" -d mastodon_production -c "VACUUM ANALYZE" >/dev/null || die "cannot vacuum"
run backup1b backup
S1=$(snap 's["id"]')
before=$(dumps)
run backup2 backup
rc_is 0 "backup of an unchanged server"
has "it says the dump is reused" "its dump is reused"
[ "$(dumps)" = "$before" ] && ok "no pg_dump ran" || fail "pg_dump ran ($(dumps) dumps, $before before)"
[ "$(snap 's["components"]["postgres"].get("dump_reused_from")')" = "$S1" ] &&
    ok "the snapshot names the snapshot its dump comes from" ||
    fail "dump_reused_from: $(snap 's["components"]["postgres"]')"
run backup3 backup
[ "$(snap 's["components"]["postgres"].get("dump_reused_from")')" = "$S1" ] &&
    ok "a chain of reuses names the snapshot that ran pg_dump" ||
    fail "dump_reused_from after two reuses: $(snap 's["components"]["postgres"]')"
[ "$(snap 's["media_check"]["missing"]')" = 0 ] && ok "media check with a reused dump" ||
    fail "media check: $(snap 's["media_check"]')"
wipe
run restore2 restore_to
rc_is 0 "restore of a snapshot with a reused dump"
mastodon_digest "$NEW" >"$T/d2.new"
same "it restores exactly" "$T/d1" "$T/d2.new"

before=$(dumps)
psql_app -c "UPDATE accounts SET note = note || '!' WHERE id = 5" || die "cannot change a row"
run backup4 backup
rc_is 0 "backup after one row changed"
[ "$(dumps)" = $((before + 1)) ] && ok "pg_dump ran again" || fail "pg_dump runs: $(dumps), $before before"
[ "$(snap 's["components"]["postgres"].get("dump_reused_from")')" = None ] &&
    ok "its dump is its own" || fail "dump_reused_from: $(snap 's["components"]["postgres"]')"
mastodon_digest "$OLD" >"$T/d4"
wipe
run restore4 restore_to
mastodon_digest "$NEW" >"$T/d4.new"
same "the changed row is restored" "$T/d4" "$T/d4.new"

run backup5 backup
has "unchanged again: reused" "its dump is reused"
before=$(dumps)
seq=$(psql_app -c "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1 LIMIT 1")
[ -n "$seq" ] || die "the harness database has no sequence"
psql_app -c "SELECT nextval('$seq')" >/dev/null || die "cannot call nextval"
run backup6 backup
[ "$(dumps)" = $((before + 1)) ] && ok "a sequence moved by nextval() alone: pg_dump ran" ||
    fail "nextval: pg_dump runs $(dumps), $before before"

before=$(dumps)
run backup7 backup --fresh-dump
[ "$(dumps)" = $((before + 1)) ] && ok "--fresh-dump runs pg_dump" || fail "--fresh-dump: no pg_dump"

# Transactions with an id in progress. open_txn SQL: a session that ran SQL and waits, inside
# its transaction, for what close_txn sends.
open_txn() {
    rm -f "$T/txn"
    mkfifo "$T/txn"
    (psql_app <"$T/txn" >/dev/null 2>&1) &
    TXN_PID=$!
    exec 3>"$T/txn"
    echo "BEGIN; $1" >&3
    local n=0
    until [ "$(psql_app -c "SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND state = 'idle in transaction'")" = 1 ]; do
        n=$((n + 1))
        [ $n -le 400 ] || die "the open transaction did not start"
        sleep 0.05
    done
}
close_txn() {
    echo "$1" >&3
    exec 3>&-
    wait "$TXN_PID"
}
# The newest writer still open: the snapshot cannot see it, but its end moves the snapshot's
# xmax, so the next backup dumps.
run backup8 backup
open_txn "UPDATE accounts SET note = note || '#' WHERE id = 6;"
run backup9 backup
rc_is 0 "backup with the newest writer in progress"
close_txn "COMMIT;"
before=$(dumps)
run backup10 backup
[ "$(dumps)" = $((before + 1)) ] && ok "it committed after the snapshot: pg_dump runs" ||
    fail "a writer that committed after the snapshot: pg_dump runs $(dumps), $before before"
# An older writer open while a newer one committed: not judged, nothing recorded.
open_txn "UPDATE accounts SET note = note WHERE id = 8;"
psql_app -c "UPDATE accounts SET note = note || '%' WHERE id = 9" || die "cannot change a row"
run backup11 backup
rc_is 0 "backup with an older writer in progress"
[ "$(snap 's["components"]["postgres"].get("dump_state")')" = None ] &&
    ok "a writer in progress below the snapshot's xmax: no state recorded" ||
    fail "state: $(snap 's["components"]["postgres"]')"
close_txn "ROLLBACK;"
before=$(dumps)
run backup12 backup
[ "$(dumps)" = $((before + 1)) ] && ok "after it, pg_dump runs (nothing to compare with)" ||
    fail "after a writer: pg_dump runs $(dumps), $before before"
run backup13 backup
has "and the next one reuses again" "its dump is reused"

# ---- a parallel dump (pg_dump -Fd -j 2) ---------------------------------------------------------
SMALL=$T/small
mkdir -p "$SMALL"
if mount -t tmpfs -o size=4k pf-test-small "$SMALL" 2>/dev/null; then
    harness_on_exit "umount '$SMALL' 2>/dev/null"
    TMPDIR=$SMALL run fdfull backup --pg-dump-jobs 2
    [ "$RC" != 0 ] && ok "a parallel dump into a full TMPDIR is refused" || fail "it ran into a full TMPDIR"
    has "it says why and what to do" "pg_dump_jobs = 1"
    umount "$SMALL"
else
    fail "the full-TMPDIR case mounts a tmpfs: run as root"
fi
psql_app -c "UPDATE accounts SET note = note || '&' WHERE id = 10" || die "cannot change a row"
before=$(dumps)
run fd1 backup --pg-dump-jobs 2
rc_is 0 "backup --pg-dump-jobs 2"
has "it states the room it needs first" "needs"
[ "$(dumps)" = $((before + 1)) ] && ok "one pg_dump ran" || fail "pg_dump runs: $(dumps), $before before"
grep -q -- '--format=directory' "$T/dumps.log" && ok "pg_dump -Fd" || fail "no -Fd in $(cat "$T/dumps.log")"
run fdls "$PF" --repo "$REPO" ls latest
has "the snapshot holds the dump's folder" "/postgres/mastodon_production.dir/toc.dat"
[ -z "$(find "$SMALL" "${TMPDIR:-/tmp}" -maxdepth 1 -name 'permafrost-pgdump-*' 2>/dev/null)" ] &&
    ok "nothing left in TMPDIR" || fail "left: $(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'permafrost-pgdump-*')"
[ "$(snap 's["media_check"]["missing"]')" = 0 ] && ok "media check with a parallel dump" ||
    fail "media check: $(snap 's["media_check"]')"
mastodon_digest "$OLD" >"$T/dfd"
wipe
run fdrestore restore_to
rc_is 0 "restore of a parallel dump (pg_restore -j from its folder)"
mastodon_digest "$NEW" >"$T/dfd.new"
same "it restores exactly" "$T/dfd" "$T/dfd.new"
run fd2 backup --pg-dump-jobs 2
has "an unchanged database reuses the parallel dump too" "its dump is reused"

# ---- a failing component on restore ------------------------------------------------------------
# pg_restore fails (after every check passed): Redis and the media, after it in registry
# order, are restored all the same.
mkdir -p "$T/rbin"
for f in "$HARNESS_PGBIN"/*; do ln -s "$f" "$T/rbin/"; done
rm "$T/rbin/pg_restore"
cat >"$T/rbin/pg_restore" <<EOS
#!/bin/sh
[ "\$1" = --version ] && exec "$HARNESS_PGBIN/pg_restore" --version
echo "pg_restore: error: could not write: No space left on device" >&2
exit 1
EOS
chmod 755 "$T/rbin/pg_restore"
wipe
PERMAFROST_PG_BINDIR=$T/rbin run restore9 restore_to
[ "$RC" != 0 ] && ok "restore with a failing pg_restore fails" || fail "restore with a failing pg_restore passed"
has "the report names the failed step and what was restored meanwhile" \
    "restore stopped in the postgres step: restored: secrets, redis, media; not restored: db"
mastodon_digest "$OLD" | sed -n '/^# redis/,$p' >"$T/r.old"
mastodon_digest "$NEW" | sed -n '/^# redis/,$p' | grep -v env.production >"$T/r.new"
same "Redis, the secrets and the media are the snapshot's" <(grep -v env.production "$T/r.old") "$T/r.new"

[ "$FAILED" = 0 ] || exit 1

#!/usr/bin/env bash
# Component integration tests against real PostgreSQL and Redis servers on loopback:
# .env.production variants, probe/dump/restore of the database with its failure modes,
# Redis RDB out (replication, diskless form, BGSAVE fallback) and back in.
# Driven by tests/tools/pfcomp (built by `make unit`). Uses $BUILD (default build).
set -uo pipefail

SRC=${PF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
PFCOMP=$BUILD/tests/pfcomp
if [ ! -x "$PFCOMP" ]; then
    make -C "$SRC" -s BUILD="$BUILD" "$PFCOMP" >/dev/null || { echo "FAIL cannot build $PFCOMP"; exit 1; }
fi

. "$SRC/tests/harness/mastodon.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/pf-components.XXXXXX")
harness_on_exit "rm -rf '$T'"
chmod 755 "$T"
FAILED=0
ok() { echo "ok   $*"; }
fail() {
    echo "FAIL $*"
    FAILED=$((FAILED + 1))
}
# expect CODE DESCRIPTION -- command...: the exit status must be CODE (10 + pf_err code).
expect() {
    local want=$1 what=$2
    shift 3
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" = "$want" ]; then
        ok "$what"
    else
        fail "$what: exit $rc, wanted $want"
        sed 's/^/     | /' "$T/out" "$T/err" | tail -20
    fi
}
# The last command's output must (not) contain TEXT.
has() { grep -qF -- "$2" "$T/out" "$T/err" && ok "$1" || { fail "$1: no \"$2\" in"; sed 's/^/     | /' "$T/out" "$T/err" | tail -10; }; }
hasnt() { grep -qF -- "$2" "$T/out" "$T/err" && { fail "$1: \"$2\" shown"; sed 's/^/     | /' "$T/out" "$T/err" | tail -10; } || ok "$1"; }
section() { sed -n "/^# $2\$/,/^# /p" "$1" | sed '$d'; }
same() { # DESCRIPTION FILE1 FILE2
    if diff -u "$2" "$3" >"$T/diff"; then ok "$1"; else
        fail "$1"
        sed 's/^/     | /' "$T/diff" | head -30
    fi
}

E_NOTFOUND=13 E_EEXIST=14 E_CORRUPT=16 E_AUTH=17 E_COMPONENT=20 E_CONN=22

# ---- .env.production variants ---------------------------------------------------------
live=$T/envtest
mkdir -p "$live"
cat >"$live/.env.production" <<'EOV'
# comment
LOCAL_DOMAIN=social.example
export DB_HOST=/var/run/postgresql
DB_PASS="p#ss \"word\" $ecret"
DATABASE_URL=postgresql://masto:url%40pw@db.internal:6432/toots?sslmode=require
REDIS_URL=redis://jobs:r3d1s%21@redis.internal:6380/2
CACHE_REDIS_URL=redis://cache.internal:6379/0
PAPERCLIP_ROOT_PATH=/srv/media
S3_ENABLED=false
ES_ENABLED=true
EOV
expect 0 "env: DATABASE_URL and REDIS_URL" -- "$PFCOMP" env "$live"
has "env: DATABASE_URL host wins" "db.host=db.internal"
has "env: DATABASE_URL port" "db.port=6432"
has "env: DATABASE_URL user (percent-decoded)" "db.user=masto"
has "env: DATABASE_URL database" "db.name=toots"
has "env: REDIS_URL user" "redis.user=jobs"
has "env: REDIS_URL db" "redis.db=2"
has "env: cache Redis noticed" "cache_redis_separate=yes"
has "env: PAPERCLIP_ROOT_PATH" "paperclip_root=/srv/media"
has "env: ES_ENABLED" "es=yes"
hasnt "env: DB password never shown" "url@pw"
hasnt "env: Redis password never shown" "r3d1s"

printf 'LOCAL_DOMAIN=x\nDATABASE_URL=postgresql:///mastodon_production?host=/run/postgresql\nREDIS_HOST=10.1.1.1\nREDIS_PORT=6390\nREDIS_PASSWORD=x\n' >"$live/.env.production"
expect 0 "env: socket DATABASE_URL" -- "$PFCOMP" env "$live"
has "env: socket host from the query" "db.host=/run/postgresql"
has "env: REDIS_HOST/REDIS_PORT" "redis.port=6390"
has "env: default paperclip root" "paperclip_root=$live/public/system"

printf 'DB_HOST=localhost\n' >"$live/.env.production"
expect 12 "env: missing LOCAL_DOMAIN is a usage error" -- "$PFCOMP" env "$live"
has "env: error names the key" "LOCAL_DOMAIN"
has "env: error names the file" "$live/.env.production"

printf 'LOCAL_DOMAIN=x\nDB_PORT=54s32\nDB_PASS=hunter2\n' >"$live/.env.production"
expect 12 "env: invalid DB_PORT" -- "$PFCOMP" env "$live"
has "env: DB_PORT named" "DB_PORT is not a port number"
hasnt "env: value not shown" "54s32"

rm "$live/.env.production"
expect "$E_NOTFOUND" "env: missing file" -- "$PFCOMP" env "$live"

# ---- PostgreSQL ---------------------------------------------------------------------------
mastodon_up "$T/src" >/dev/null || { echo "FAIL cannot start the source server"; exit 1; }
mastodon_blank "$T/dst" >/dev/null || { echo "FAIL cannot start the target server"; exit 1; }
SRCLIVE=$T/src/live
DST_PGPORT=$(. "$T/dst/pg.env" && echo "$PG_PORT")
DST_SOCK=$(. "$T/dst/pg.env" && echo "$PG_SOCK")
DST_REDISPORT=$(. "$T/dst/redis.env" && echo "$REDIS_PORT")
SRC_PGPORT=$(. "$T/src/pg.env" && echo "$PG_PORT")

expect 0 "pg: probe" -- "$PFCOMP" pg-probe "$SRCLIVE"
has "pg: server version" "server_version=1"
has "pg: accounts counted" "accounts=60"
has "pg: statuses counted" "statuses=500"
has "pg: media_attachments counted" "media_attachments=40"
has "pg: mastodon is not a superuser" "superuser=no"

# A live directory whose .env points elsewhere.
variant() { # NAME SED-EXPRESSION: a copy of the source live/ with its .env changed
    mkdir -p "$T/$1"
    sed "$2" "$SRCLIVE/.env.production" >"$T/$1/.env.production"
    echo "$T/$1"
}
deadport=$(harness_free_port)
expect "$E_CONN" "pg: unreachable server" -- "$PFCOMP" pg-probe "$(variant pgdead "s/^DB_PORT=.*/DB_PORT=$deadport/")"
has "pg: unreachable names the address" "127.0.0.1:$deadport"
expect "$E_AUTH" "pg: wrong password" -- "$PFCOMP" pg-probe "$(variant pgbadpw 's/^DB_PASS=.*/DB_PASS=not-the-password-42/')"
hasnt "pg: wrong password not shown" "not-the-password-42"
expect "$E_NOTFOUND" "pg: missing database" -- "$PFCOMP" pg-probe "$(variant pgnodb 's/^DB_NAME=.*/DB_NAME=no_such_db/')"
has "pg: missing database named" "no_such_db"
PERMAFROST_PG_BINDIR=$T/nobin expect "$E_COMPONENT" "pg: no client binaries" -- "$PFCOMP" pg-probe "$SRCLIVE"
has "pg: says what to install" "install postgresql-client-"

# Fake clients that fail in the middle of the dump.
fakebin() { # NAME BODY: a directory with pg_dump/pg_dumpall that answer --version and then BODY
    mkdir -p "$T/$1"
    local tool
    for tool in pg_dump pg_dumpall; do
        cat >"$T/$1/$tool" <<EOS
#!/bin/sh
if [ "\$1" = --version ]; then echo "$tool (PostgreSQL) 99.0"; exit 0; fi
$2
EOS
        chmod 755 "$T/$1/$tool"
    done
    echo "$T/$1"
}
PERMAFROST_PG_BINDIR=$(fakebin fail1 'head -c 70000 /dev/zero; echo "pg_dump: error: query failed: connection lost" >&2; exit 1') \
    expect "$E_COMPONENT" "pg: pg_dump exiting 1 mid-dump fails the dump" -- "$PFCOMP" pg-dump "$SRCLIVE" "$T/x.dump" "$T/x.sql"
has "pg: error carries pg_dump's stderr" "pg_dump exited 1: pg_dump: error: query failed: connection lost"
PERMAFROST_PG_BINDIR=$(fakebin kill9 'head -c 10000 /dev/zero; echo "dying" >&2; kill -9 $$') \
    expect "$E_COMPONENT" "pg: pg_dump killed mid-dump fails the dump" -- "$PFCOMP" pg-dump "$SRCLIVE" "$T/x.dump" "$T/x.sql"
has "pg: signal reported" "killed by signal 9"
# PGPASSWORD reaches the child through its environment, never its argv.
PERMAFROST_PG_BINDIR=$(fakebin spy 'echo "argv: $*" >&2; [ -n "$PGPASSWORD" ] && echo "env has PGPASSWORD" >&2; exit 3') \
    expect "$E_COMPONENT" "pg: spy client" -- "$PFCOMP" pg-dump "$SRCLIVE" "$T/x.dump" "$T/x.sql"
has "pg: password passed in the environment" "env has PGPASSWORD"
hasnt "pg: password not in argv" "harness db pass"

expect 0 "pg: dump and globals" -- "$PFCOMP" pg-dump "$SRCLIVE" "$T/db.dump" "$T/globals.sql"
has "pg: counts taken in the dump's snapshot" "counts_in_dump_snapshot=yes"
head -c 5 "$T/db.dump" | grep -q PGDMP && ok "pg: custom-format dump" || fail "pg: dump lacks the PGDMP magic"
grep -q "CREATE ROLE mastodon_readonly" "$T/globals.sql" && ok "pg: globals hold the roles" || fail "pg: globals lack the roles"
grep -q "GRANT CONNECT ON DATABASE mastodon_production TO mastodon_readonly" "$T/globals.sql" &&
    ok "pg: globals hold database-level grants" || fail "pg: globals lack the database-level grant"
grep -q "PASSWORD 'SCRAM" "$T/globals.sql" && fail "pg: a non-superuser dump must not hold password hashes" ||
    ok "pg: --no-role-passwords for a non-superuser"
# The in_snapshot hook of pf_pg_dump: called inside the dump's own transaction, and its
# refusal stops the dump before pg_dump writes a byte.
PFCOMP_IN_SNAPSHOT=show expect 0 "pg: dump with an in-snapshot hook" -- "$PFCOMP" pg-dump "$SRCLIVE" "$T/h.dump" "$T/h.sql"
has "pg: the hook runs in REPEATABLE READ" "in_snapshot_isolation=repeatable read"
has "pg: the hook's transaction is read-only" "in_snapshot_read_only=on"
n_hook=$(sed -n 's/^in_snapshot_accounts=//p' "$T/out") n_dump=$(sed -n 's/^accounts=//p' "$T/out")
[ -n "$n_hook" ] && [ "$n_hook" = "$n_dump" ] && ok "pg: the hook counts what the dump holds ($n_hook accounts)" ||
    fail "pg: hook saw '$n_hook' accounts, the dump '$n_dump'"
head -c 5 "$T/h.dump" | grep -q PGDMP && ok "pg: the dump still runs after the hook" || fail "pg: no dump after the hook"
PFCOMP_IN_SNAPSHOT=fail expect "$E_COMPONENT" "pg: a refusing hook fails the dump" -- "$PFCOMP" pg-dump "$SRCLIVE" "$T/f.dump" "$T/f.sql"
has "pg: the hook's message is the error" "the in-snapshot check refused"
[ ! -s "$T/f.dump" ] && ok "pg: pg_dump did not run after the refusal" || fail "pg: pg_dump wrote $(stat -c %s "$T/f.dump") bytes after the hook refused"

restore_tcp() { # extra options...
    PFCOMP_ADMIN_PASSWORD=$PG_SUPERPASS PFCOMP_OWNER_PASSWORD=$MASTODON_DB_PASS "$PFCOMP" pg-restore \
        --host 127.0.0.1 --port "$DST_PGPORT" --admin postgres --db mastodon_production --owner mastodon \
        --jobs 3 "$@" "$T/globals.sql" "$T/db.dump"
}
mastodon_digest "$T/src" >"$T/src.digest"
PFCOMP_ADMIN_PASSWORD=wrong-admin-pw expect "$E_AUTH" "pg: restore with a wrong admin password" -- \
    "$PFCOMP" pg-check --host 127.0.0.1 --port "$DST_PGPORT" --admin postgres --db mastodon_production --owner mastodon
hasnt "pg: admin password not shown" "wrong-admin-pw"
PFCOMP_ADMIN_PASSWORD=$PG_SUPERPASS expect 0 "pg: restore check on a blank cluster" -- \
    "$PFCOMP" pg-check --host 127.0.0.1 --port "$DST_PGPORT" --admin postgres --db mastodon_production --owner mastodon
expect 0 "pg: restore onto a blank cluster" -- restore_tcp
mastodon_digest "$T/dst" >"$T/dst.digest"
same "pg: restored database has the same digest" <(section "$T/src.digest" database) <(section "$T/dst.digest" database)
grep -q "login mastodon with DB_PASS: ok" "$T/dst.digest" && ok "pg: owner logs in with DB_PASS" || fail "pg: owner cannot log in"

expect "$E_EEXIST" "pg: restore refuses a database that holds tables" -- restore_tcp
has "pg: refusal says how to override" "--force"
expect 0 "pg: restore --force over it" -- restore_tcp --force
mastodon_digest "$T/dst" >"$T/dst.digest"
same "pg: forced restore has the same digest" <(section "$T/src.digest" database) <(section "$T/dst.digest" database)

# A globals.sql from a hostile snapshot: psql meta-commands inside a multi-line statement,
# in the database-level section, or SQL of another form must run nothing, change nothing
# (even with --force, which would drop the database), and name the line.
hostile() { # NAME AWK-PROGRAM: writes $T/hostile-NAME.sql from the real globals.sql
    awk -v pwned="$T/pwned-$1" "$2" "$T/globals.sql" >"$T/hostile-$1.sql"
}
hostile midstmt '/^ALTER ROLE mastodon_readonly WITH/ && !done { sub(/ NOREPLICATION/, "\n\\! touch " pwned "\nNOREPLICATION"); done=1 } { print }'
hostile section '{ print } /^-- permafrost: database-level settings/ { print "GRANT CONNECT ON DATABASE mastodon_production TO"; print "\\o |touch " pwned; print "mastodon_readonly;" }'
hostile copy '/^CREATE ROLE mastodon_readonly/ { print "COPY (SELECT 1) TO PROGRAM '\''touch " pwned "'\'';" } { print }'
for h in midstmt section copy; do
    grep -q "touch $T/pwned-$h" "$T/hostile-$h.sql" || fail "pg: hostile globals.sql ($h) not built"
    PFCOMP_ADMIN_PASSWORD=$PG_SUPERPASS PFCOMP_OWNER_PASSWORD=$MASTODON_DB_PASS expect "$E_CORRUPT" \
        "pg: globals.sql with a hostile statement ($h) refused" -- "$PFCOMP" pg-restore \
        --host 127.0.0.1 --port "$DST_PGPORT" --admin postgres --db mastodon_production --owner mastodon \
        --force --jobs 2 "$T/hostile-$h.sql" "$T/db.dump"
    has "pg: refusal ($h) names the file and says nothing changed" "refusing the snapshot's globals.sql (the database was not touched)"
    has "pg: refusal ($h) names the line" ": line "
    [ -e "$T/pwned-$h" ] && fail "pg: a command from globals.sql ($h) ran on this host" ||
        ok "pg: nothing from globals.sql ($h) ran on this host"
done
mastodon_digest "$T/dst" >"$T/dst.digest"
same "pg: refused restores left the database as it was" <(section "$T/src.digest" database) <(section "$T/dst.digest" database)

# Restore through the local socket with peer-style admin access: as root this runs the
# clients as the postgres OS user (runuser).
if [ "$(id -u)" = 0 ]; then
    PFCOMP_OWNER_PASSWORD=$MASTODON_DB_PASS expect 0 "pg: restore --force as postgres over the socket (runuser)" -- \
        "$PFCOMP" pg-restore --host "$DST_SOCK" --port "$DST_PGPORT" --db mastodon_production --owner mastodon \
        --force --jobs 2 "$T/globals.sql" "$T/db.dump"
    mastodon_digest "$T/dst" >"$T/dst.digest"
    same "pg: socket restore has the same digest" <(section "$T/src.digest" database) <(section "$T/dst.digest" database)
fi
ls "${TMPDIR:-/tmp}" | grep -q permafrost-pg- && fail "pg: spooled dump left behind" || ok "pg: spooled dump removed"

# ---- Redis ----------------------------------------------------------------------------------
expect 0 "redis: fetch RDB like a replica" -- "$PFCOMP" redis-fetch "$SRCLIVE" "$T/dump.rdb"
has "redis: PSYNC used" "method=PSYNC"
head -c 5 "$T/dump.rdb" | grep -q REDIS && ok "redis: payload is an RDB" || fail "redis: payload is not an RDB"
expect 0 "redis: target is empty" -- "$PFCOMP" redis-check --port "$DST_REDISPORT"
expect 0 "redis: load into the empty target" -- "$PFCOMP" redis-load --port "$DST_REDISPORT" "$T/dump.rdb"
mastodon_digest "$T/dst" >"$T/dst.digest"
same "redis: same keys, types, values and TTLs" <(section "$T/src.digest" redis) <(section "$T/dst.digest" redis)
[ "$(redis_cli "$T/dst" info replication | tr -d '\r' | grep '^role:')" = role:master ] &&
    ok "redis: target is a master again" || fail "redis: target still a replica"
expect "$E_EEXIST" "redis: load refuses a non-empty target" -- "$PFCOMP" redis-load --port "$DST_REDISPORT" "$T/dump.rdb"
redis_cli "$T/dst" flushall >/dev/null
PFCOMP_UNKNOWN_SIZE=1 expect 0 "redis: load with the EOF-marked form" -- "$PFCOMP" redis-load --port "$DST_REDISPORT" "$T/dump.rdb"
mastodon_digest "$T/dst" >"$T/dst.digest"
same "redis: EOF-marked load gives the same keys" <(section "$T/src.digest" redis) <(section "$T/dst.digest" redis)

# The diskless ($EOF:<mark>) form on the way out: only sent when asked for with capa eof.
redis_cli "$T/src" config set repl-diskless-sync yes >/dev/null
redis_cli "$T/src" config set repl-diskless-sync-delay 0 >/dev/null
PERMAFROST_REDIS_CAPA_EOF=1 expect 0 "redis: fetch in the diskless EOF-marked form" -- "$PFCOMP" redis-fetch "$SRCLIVE" "$T/eof.rdb"
redis_cli "$T/dst" flushall >/dev/null
expect 0 "redis: load the diskless RDB" -- "$PFCOMP" redis-load --port "$DST_REDISPORT" "$T/eof.rdb"
mastodon_digest "$T/dst" >"$T/dst.digest"
same "redis: diskless RDB gives the same keys" <(section "$T/src.digest" redis) <(section "$T/dst.digest" redis)

# A payload of many chunks, both forms, compared with DEBUG DIGEST (content and TTLs).
redis_start "$T/big" >/dev/null
BIG_PORT=$REDIS_PORT
redis_cli "$T/big" debug populate 120000 key 120 >/dev/null
redis_cli "$T/big" set volatile v ex 3600 >/dev/null
mkdir -p "$T/biglive"
printf 'LOCAL_DOMAIN=x\nREDIS_HOST=127.0.0.1\nREDIS_PORT=%s\n' "$BIG_PORT" >"$T/biglive/.env.production"
big_digest=$(redis_cli "$T/big" debug digest)
expect 0 "redis: fetch a multi-megabyte RDB" -- "$PFCOMP" redis-fetch "$T/biglive" "$T/big.rdb"
redis_cli "$T/big" config set repl-diskless-sync yes >/dev/null
redis_cli "$T/big" config set repl-diskless-sync-delay 0 >/dev/null
PERMAFROST_REDIS_CAPA_EOF=1 expect 0 "redis: fetch it in the diskless form" -- "$PFCOMP" redis-fetch "$T/biglive" "$T/big-eof.rdb"
# (The two RDBs differ in their creation time and replication fields, not in data.)
for f in big big-eof; do
    redis_cli "$T/dst" flushall >/dev/null
    PFCOMP_UNKNOWN_SIZE=1 expect 0 "redis: load $f.rdb EOF-marked" -- "$PFCOMP" redis-load --port "$DST_REDISPORT" "$T/$f.rdb"
    [ "$(redis_cli "$T/dst" debug digest)" = "$big_digest" ] && ok "redis: $f.rdb round trip (DEBUG DIGEST)" ||
        fail "redis: $f.rdb round trip differs"
done
redis_cli "$T/dst" flushall >/dev/null
redis_stop "$T/big"

# A target still loading its own dump (just restarted): it refuses REPLICAOF (-LOADING) and
# its INFO keyspace counts only what it has loaded so far. The check and the load wait until
# it has loaded (key-load-delay: 1 ms a key, so its dump takes seconds to load; small event
# intervals, so it answers INFO meanwhile).
redis_start "$T/slow" --conf "loading-process-events-interval-bytes 1024" >/dev/null
redis_cli "$T/slow" debug populate 400 other 20 >/dev/null
redis_cli "$T/slow" save >/dev/null
cp "$T/slow/redis/dump.rdb" "$T/other.rdb"
other_digest=$(redis_cli "$T/slow" debug digest)
redis_cli "$T/slow" flushall >/dev/null
redis_cli "$T/slow" debug populate 3000 slow 20 >/dev/null
redis_cli "$T/slow" save >/dev/null
restart_loading() { # restarts $T/slow on a fresh port with its dump; waits until it is loading
    local i port
    redis_stop "$T/slow"
    port=$(harness_free_port) || return 1
    sed -i "s/^port .*/port $port/" "$T/slow/redis.conf"
    sed -i "s/^REDIS_PORT=.*/REDIS_PORT=$port/" "$T/slow/redis.env"
    SLOW_PORT=$port
    redis-server "$T/slow/redis.conf" --key-load-delay 1000 || return 1
    for ((i = 0; i < 200; i++)); do
        redis_cli "$T/slow" info persistence 2>/dev/null | tr -d '\r' | grep -qx 'loading:1' && return 0
        sleep 0.05
    done
    return 1
}
restart_loading || fail "redis: the restarted server never said it was loading"
expect "$E_EEXIST" "redis: the check waits for a loading server, then refuses its keys" -- \
    "$PFCOMP" redis-check --port "$SLOW_PORT"
has "redis: the check counts every key of the loaded dump" "holds 3000 keys"
restart_loading || fail "redis: the restarted server never said it was loading"
expect 0 "redis: a load into a server still loading its dump waits until it has loaded" -- \
    "$PFCOMP" redis-load --port "$SLOW_PORT" --force "$T/other.rdb"
[ "$(redis_cli "$T/slow" debug digest)" = "$other_digest" ] && ok "redis: the RDB loaded after the wait" ||
    fail "redis: the load into the restarted server gave other data"
redis_stop "$T/slow"

# Another client re-points the target in the middle of a transfer: the load fails saying
# so, and the target's data is as it was (nothing loaded). The RDB comes through a FIFO
# that holds back all but its first 256 KiB until the REPLICAOF NO ONE is done.
mkfifo "$T/cut.fifo"
python3 - "$T/big.rdb" "$T/cut.fifo" "$T/cut.done" <<'PY' &
import os, sys, time
data = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "wb") as out:
    out.write(data[:262144])
    out.flush()
    for _ in range(600):
        if os.path.exists(sys.argv[3]):
            break
        time.sleep(0.05)
    try:
        out.write(data[262144:])
    except BrokenPipeError:
        pass
PY
feeder=$!
PFCOMP_UNKNOWN_SIZE=1 "$PFCOMP" redis-load --port "$DST_REDISPORT" "$T/cut.fifo" >"$T/out" 2>"$T/err" &
loader=$!
for ((i = 0; i < 300; i++)); do
    redis_cli "$T/dst" info replication | tr -d '\r' | grep -qx 'master_sync_in_progress:1' && break
    sleep 0.05
done
redis_cli "$T/dst" replicaof no one >/dev/null
touch "$T/cut.done"
rc=0
wait "$loader" || rc=$?
wait "$feeder" 2>/dev/null || true
[ "$rc" != 0 ] && ok "redis: a transfer cut by another client fails (exit $rc)" ||
    fail "redis: a transfer cut by another client succeeded"
has "redis: the failure says the target stopped replicating" "the target stopped replicating during the load"
[ "$(redis_cli "$T/dst" dbsize)" = 0 ] && ok "redis: the cut transfer loaded nothing" ||
    fail "redis: the cut transfer left $(redis_cli "$T/dst" dbsize) keys"

# Passwords and ACL users.
redis_start "$T/rpw" --pass 'r3dis pw!' --user nosync 'ns pw' '~*' '&*' '+@all' -sync -psync \
    --user nothing 'no pw' '~*' '+ping' '+info' >/dev/null
RPW_PORT=$REDIS_PORT
printf 'SET a 1\nLPUSH queue:default job\nSET ttl x EX 600\n' | redis_cli "$T/rpw" >/dev/null
mk_redis_live() { # NAME ENV-LINES
    mkdir -p "$T/$1"
    printf 'LOCAL_DOMAIN=x\nREDIS_HOST=127.0.0.1\nREDIS_PORT=%s\n%s\n' "$RPW_PORT" "$2" >"$T/$1/.env.production"
    echo "$T/$1"
}
expect 0 "redis: fetch with requirepass" -- "$PFCOMP" redis-fetch "$(mk_redis_live rpass 'REDIS_PASSWORD="r3dis pw!"')" "$T/pw.rdb"
has "redis: replication with a password" "method=PSYNC"
expect "$E_AUTH" "redis: wrong password" -- "$PFCOMP" redis-fetch "$(mk_redis_live rbad 'REDIS_PASSWORD=wrong-redis-pw')" "$T/bad.rdb"
hasnt "redis: wrong password not shown" "wrong-redis-pw"
expect "$E_AUTH" "redis: no password where one is needed" -- "$PFCOMP" redis-fetch "$(mk_redis_live rnone '')" "$T/bad.rdb"
expect 0 "redis: ACL user without +sync/+psync falls back to BGSAVE" -- \
    "$PFCOMP" redis-fetch "$(mk_redis_live racl 'REDIS_URL=redis://nosync:ns%20pw@127.0.0.1:'"$RPW_PORT")" "$T/acl.rdb"
has "redis: fallback announced" "falling back to BGSAVE"
has "redis: fallback used" "method=BGSAVE"
redis_cli "$T/dst" flushall >/dev/null
expect 0 "redis: load the BGSAVE copy" -- "$PFCOMP" redis-load --port "$DST_REDISPORT" "$T/acl.rdb"
has "redis: keys loaded" "keys=3"
expect "$E_COMPONENT" "redis: user that may neither sync nor BGSAVE gets a clear error" -- \
    "$PFCOMP" redis-fetch "$(mk_redis_live rnothing 'REDIS_USER=nothing
REDIS_PASSWORD=no pw')" "$T/no.rdb"
has "redis: error says replication was refused" "replication refused"
expect "$E_CONN" "redis: unreachable" -- "$PFCOMP" redis-fetch "$(mk_redis_live rdead "REDIS_PORT=$deadport")" "$T/dead.rdb"

# A target that asks for a password itself.
redis_cli "$T/dst" flushall >/dev/null
redis_cli "$T/dst" config set requirepass 'target pw' >/dev/null
PFCOMP_REDIS_PASSWORD='target pw' expect 0 "redis: load into a password-protected target" -- \
    "$PFCOMP" redis-load --port "$DST_REDISPORT" "$T/dump.rdb"
REDISCLI_AUTH='target pw' redis-cli -p "$DST_REDISPORT" config set requirepass '' >/dev/null

# The load authenticates the target with a random masterauth, and puts the target's own back.
redis_cli "$T/dst" flushall >/dev/null
redis_cli "$T/dst" config set masterauth 'the target own masterauth' >/dev/null
expect 0 "redis: load into a target that has a masterauth of its own" -- "$PFCOMP" redis-load --port "$DST_REDISPORT" "$T/dump.rdb"
[ "$(redis_cli "$T/dst" config get masterauth | tail -1)" = 'the target own masterauth' ] &&
    ok "redis: the target's masterauth is put back" || fail "redis: the target's masterauth was not put back"
[ "$(redis_cli "$T/dst" config get sanitize-dump-payload | tail -1)" = no ] &&
    ok "redis: sanitize-dump-payload put back after the load" || fail "redis: sanitize-dump-payload left changed"
redis_cli "$T/dst" config set masterauth '' >/dev/null
# A target whose user may not CONFIG SET: served only to a connection from its address.
redis_start "$T/rnoconf" --user noconf 'nc pw' '~*' '&*' '+@all' -config >/dev/null
PFCOMP_REDIS_PASSWORD='nc pw' expect 0 "redis: load without CONFIG (peer address checked)" -- \
    "$PFCOMP" redis-load --port "$REDIS_PORT" --user noconf "$T/dump.rdb"
has "redis: says the RDB goes only to the target's address" "the RDB goes only to a connection from 127.0.0.1"
redis_stop "$T/rnoconf"

# When replication is refused, the RDB is written beside the dump file, as root in a
# directory the redis user owns: never through a symlink planted there.
redis_start "$T/rbeside" --user norepl 'nr pw' '~*' '&*' '+@all' -replicaof -slaveof >/dev/null
BESIDE=$REDIS_DIR/dump.rdb.permafrost
echo precious >"$T/victim"
ln -s "$T/victim" "$BESIDE"
PFCOMP_REDIS_PASSWORD='nr pw' expect "$E_COMPONENT" "redis: fallback file refused over a planted symlink" -- \
    "$PFCOMP" redis-load --port "$REDIS_PORT" --user norepl "$T/dump.rdb"
has "redis: refusal names the symlink" "dump.rdb.permafrost exists and is not a regular file (a symlink?)"
[ "$(cat "$T/victim")" = precious ] && ok "redis: symlink target untouched" || fail "redis: wrote through the symlink"
rm -f "$BESIDE"
echo stale >"$BESIDE"
PFCOMP_REDIS_PASSWORD='nr pw' expect "$E_COMPONENT" "redis: replication refused: RDB written beside the dump file" -- \
    "$PFCOMP" redis-load --port "$REDIS_PORT" --user norepl "$T/dump.rdb"
has "redis: says where the RDB is" "the RDB is at $BESIDE"
cmp -s "$BESIDE" "$T/dump.rdb" && ok "redis: stale file replaced by the RDB" || fail "redis: $BESIDE is not the RDB"
[ "$(stat -c %U:%a "$BESIDE")" = "$(stat -c %U "$REDIS_DIR"):600" ] &&
    ok "redis: the file belongs to the directory's owner, mode 600" || fail "redis: owner/mode $(stat -c %U:%a "$BESIDE")"
chmod 777 "$REDIS_DIR"
PFCOMP_REDIS_PASSWORD='nr pw' expect "$E_COMPONENT" "redis: refused in a directory others can write" -- \
    "$PFCOMP" redis-load --port "$REDIS_PORT" --user norepl "$T/dump.rdb"
has "redis: says why" "is writable by users other than its owner"
chmod 755 "$REDIS_DIR"
redis_stop "$T/rbeside"

if [ "$FAILED" -gt 0 ]; then
    echo "$FAILED failed"
    exit 1
fi
echo "all component tests passed"

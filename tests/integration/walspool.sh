#!/usr/bin/env bash
# The WAL spool of a point-in-time restore run as root (restore --pg-physical-target --to
# --pg-start): filled while the cluster recovers, bounded, and loud when a fetch fails.
#   bounded   a target a few segments after the base backup, with 24 more segments
#             archived after it: the restore fetches only up to the target and a window
#             past it (PERMAFROST_RESTORE_WAL_WINDOW=4), never holds more than the window,
#             and recovers exactly A and B
#   failure   a segment in the middle of the archive is corrupt in the repository, restore
#             --to latest: the restore fails naming it and "recovery stopped before its
#             target", the cluster did not promote (not at the segment before: that would
#             lose everything after it silently); the spool it leaves is the cluster
#             owner's, 0700/0600
set -eEuo pipefail
trap 'echo "FAIL: line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR

PF=${PERMAFROST:-$PWD/permafrost}
HARNESS=$(cd "$(dirname "$0")/../harness" && pwd)
. "$HARNESS/pg.sh"
export TZ=UTC

W=$(mktemp -d "${TMPDIR:-/tmp}/pf-walspool.XXXXXX")
cleanup() {
    harness_run_exit
    rm -rf "$W"
}
trap cleanup EXIT

say() { echo "== $*"; }
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

if [ "$(id -u)" != 0 ]; then
    # The spool is the root path only (as another user restore_command is wal-fetch).
    ok "not root: restores use wal-fetch, there is no spool to test"
    exit 0
fi

chmod 711 "$W"
: >"$W/empty.conf"
chmod 644 "$W/empty.conf"
printf 'walspool-test-passphrase\n' >"$W/pass"
cat >"$W/pf" <<EOF
#!/bin/sh
export PERMAFROST_PASSWORD_FILE=$W/pass PERMAFROST_REPO=$W/repo PERMAFROST_KEY_CACHE=$W/kc
export PERMAFROST_CONFIG=$W/empty.conf PERMAFROST_LOCK_WAIT=30 TZ=UTC
unset PERMAFROST_PASSWORD
exec $W/permafrost "\$@"
EOF
chmod 755 "$W/pf"
cp "$PF" "$W/permafrost"
chmod 755 "$W/permafrost"
mkdir -m 700 "$W/repo" "$W/kc" "$W/r1" "$W/r2"
harness_chown_pg "$W/pass" "$W/repo" "$W/kc" "$W/r1" "$W/r2"
chmod 600 "$W/pass"
pf() { harness_as_owner "$W/pf" "$@"; }
pf init >/dev/null

pg_start_archiving "$W/db" "$W/pf wal-push %p"
CONN="host=127.0.0.1 port=$PG_PORT user=$PG_SUPERUSER password=$PG_SUPERPASS"
q() { pg_psql "$W/db" -Atc "$1"; }
q "create table t (id serial primary key, state text, at timestamptz default clock_timestamp())"
wait_archived() { # NAME
    local i
    for ((i = 0; i < 300; i++)); do
        [ -f "$W/repo/wal/${1:0:8}/$1" ] && return 0
        sleep 0.2
    done
    return 1
}
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }
switch() { q "insert into t (state) values ('$1')" && q "select pg_walfile_name(pg_switch_wal())"; }

pf --json backup --pg-physical --pg-conninfo "$CONN" >"$W/b.json" 2>"$W/b.err" ||
    fail "backup --pg-physical: $(cat "$W/b.err")"
start_wal=$(json_field '["components"]["postgres-physical"]["start_wal"]' <"$W/b.json")
# A and B each in segments of their own after the base backup, then the target, then C and
# 24 segments more.
switch A >/dev/null
a_seg=$(switch a)
q "insert into t (state) values ('B'), ('B')"
b_at=$(q "select extract(epoch from max(at))::numeric(20,6) from t")
target_epoch=$(python3 -c "import math; print(math.floor($b_at) + 1)")
target=$(date -u -d "@$target_epoch" '+%Y-%m-%d %H:%M:%S')
for ((i = 0; i < 50; i++)); do
    now=$(q "select extract(epoch from clock_timestamp())")
    python3 -c "import sys; sys.exit(0 if $now > $target_epoch + 0.05 else 1)" && break
    sleep 0.1
done
switch C >/dev/null
for ((i = 0; i < 24; i++)); do last=$(switch x); done
wait_archived "$last" || fail "segment $last not archived within 60 s"
pg_stop "$W/db"
archived=$(ls "$W/repo/wal/00000001" | awk -v s="$start_wal" 'length($0) == 24 && $0 >= s' | wc -l)

# recovery_prefetch=off: PostgreSQL's reader runs ahead of replay by wal_decode_buffer_size
# (512 kB) of WAL, a fraction of a real segment, but the almost empty segments pg_switch_wal
# leaves here hold one record each, so with it on the reader would ask for all 24 before
# replay reaches the target, and what is measured would be PostgreSQL's read-ahead.
restore() { # DIR TO: as root, into DIR/pg, started on a port of its own
    local dir=$1 to=$2 port
    port=$(harness_free_port)
    mkdir -p "$dir/run"
    harness_chown_pg "$dir/run"
    printf 'PG_PORT=%s\nPG_BIN=%s\n' "$port" "$HARNESS_PGBIN" >"$dir/pg.env"
    harness_on_exit "harness_as_owner '$HARNESS_PGBIN/pg_ctl' -D '$dir/pg' -m immediate -w stop || true"
    PERMAFROST_RESTORE_WAL_WINDOW=4 PERMAFROST_PROMOTE_WAIT=120 "$W/pf" restore latest \
        --pg-physical-target "$dir/pg" --to "$to" --pg-start \
        --pg-ctl-options "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir/run -c fsync=off -c archive_mode=off -c recovery_prefetch=off"
}

say bounded
rc=0
restore "$W/r1" "$target" >"$W/r1.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "restore --to $target as root: exit $rc: $(cat "$W/r1.out" "$W/r1/pg/log/permafrost-recovery.log")"
line=$(grep -o "fetched [0-9]* of the [0-9]* WAL segments archived .*at most [0-9]* at once" "$W/r1.out") ||
    fail "the restore does not say what it fetched: $(cat "$W/r1.out")"
read -r fetched listed held < <(sed -E 's/fetched ([0-9]+) of the ([0-9]+) .*at most ([0-9]+) at once/\1 \2 \3/' <<<"$line")
[ "$listed" = "$archived" ] || fail "listed $listed segments, the archive holds $archived from $start_wal on"
# Up to the target: the base backup's segments, A's, a's, B's and C's (about 6); the window
# (4) past that; far from the 24 after it.
[ "$fetched" -le 12 ] && [ "$fetched" -lt $((listed - 16)) ] ||
    fail "fetched $fetched of $listed segments for a target near the start: $line"
[ "$held" -le 4 ] || fail "the spool held $held segments at once, the window is 4: $line"
[ ! -e "$W/r1/pg.permafrost-wal" ] || fail "the WAL spool stayed after the promotion"
grep -q "restore_command = 'd=''$W/r1/pg.permafrost-wal''" "$W/r1/pg/postgresql.auto.conf" ||
    fail "restore_command is not the spool's: $(grep restore_command "$W/r1/pg/postgresql.auto.conf")"
states=$(pg_psql "$W/r1" -Atc "select string_agg(state, '' order by id) from t")
[ "$states" = AaBB ] || fail "PITR to $target gave '$states', wanted AaBB"
ok "to $target: $states; $line ($archived archived)"

say failure
# a's segment corrupt in the repository, and --to latest: no recovery target, so PostgreSQL
# would take a restore_command failing with "not archived" for the end of the archive and
# promote there, silently, with B, C and the rest lost.
f="$W/repo/wal/00000001/$a_seg"
size=$(stat -c %s "$f")
printf 'XXXXXXXXXXXXXXXX' | dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc status=none
rc=0
restore "$W/r2" latest >"$W/r2.out" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "a restore with a corrupt segment succeeded: $(cat "$W/r2.out")"
grep -q "recovery stopped before its target.*fetching WAL file $a_seg into the spool" "$W/r2.out" ||
    fail "the restore does not name the segment it could not fetch: $(cat "$W/r2.out")"
grep -q "promoted" "$W/r2.out" && fail "the restore says the cluster promoted: $(cat "$W/r2.out")"
[ -e "$W/r2/pg/recovery.signal" ] || fail "the cluster left recovery"
grep -q "permafrost: fetching WAL file $a_seg" "$W/r2/pg/log/permafrost-recovery.log" ||
    fail "the server log does not say why recovery stopped: $(tail -8 "$W/r2/pg/log/permafrost-recovery.log")"
sp="$W/r2/pg.permafrost-wal"
[ "$(stat -c '%a %U' "$sp")" = "700 postgres" ] || fail "spool $(stat -c '%a %U' "$sp")"
bad=$(find "$sp" -mindepth 1 \( ! -user postgres -o ! -perm 600 \) -printf '%p %m %u\n')
[ -z "$bad" ] || fail "spool files not the cluster owner's 0600: $bad"
ok "a corrupt segment fails the restore: $(grep -o 'recovery stopped before its target.*' "$W/r2.out" | head -c 200)"

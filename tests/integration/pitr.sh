#!/usr/bin/env bash
# Physical base backups and point-in-time restore against a real PostgreSQL archiving into
# the repository (archive_command = permafrost wal-push %p):
#   base      backup --pg-physical streams BASE_BACKUP into a snapshot of kind pg-physical
#             whose WAL end segment is archived; a second one stores a fraction of the
#             first (unchanged relation files deduplicate)
#   pitr      a table whose rows record their commit times: states A, B, C committed in
#             different seconds; restore --pg-physical-target --to a time between B and C,
#             start the cluster: it fetches WAL with wal-fetch, promotes, and holds exactly
#             A and B; after promotion it archives on timeline 2 (00000002.history arrives)
#             (--json: the base backup, its end, the data directory, where recovery
#             stopped, checked against docs/JSON.md)
#   latest    --to latest recovers every archived commit (A, B and C); --json before the
#             cluster is started says the point reached is not known yet
#   timeline  recovery along timeline 2 fetches 00000002.history and follows the fork
#   collector --pg-start waits for the promotion itself, not for a log line (a cluster
#             with logging_collector on writes none where restore can read it)
#   kill      kill -9 during a base backup: no snapshot, check passes, the next succeeds
#   refuse    a non-empty target is refused (exit 6)
#   gap       a deleted segment: check names it (exit 4) and the base backup it cuts
#             short; restore warns where recovery will stop
#   retention forget --keep-last 1 --prune removes the WAL only the forgotten base backup
#             needed, keeps the rest; check passes
set -eEuo pipefail
trap 'echo "FAIL: line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR

PF=${PERMAFROST:-$PWD/permafrost}
HARNESS=$(cd "$(dirname "$0")/../harness" && pwd)
. "$HARNESS/pg.sh"
. "$HARNESS/pfserver.sh"
export TZ=UTC

W=$(mktemp -d "${TMPDIR:-/tmp}/pf-pitr.XXXXXX")
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

pf_server_home "$W" pitr-test-passphrase
pf_server_wrapper "$W" pf "$W/repo" PERMAFROST_LOCK_WAIT=30 TZ=UTC
mkdir -m 700 "$W/repo" "$W/kc" "$W/restored" "$W/restored2"
harness_chown_pg "$W/repo" "$W/kc" "$W/restored" "$W/restored2"
pf() { harness_as_owner "$W/pf" "$@"; }
pf init >/dev/null

pg_start_archiving "$W/db" "$W/pf wal-push %p"
CONN="host=127.0.0.1 port=$PG_PORT user=$PG_SUPERUSER password=$PG_SUPERPASS"
q() { pg_psql "$W/db" -Atc "$1"; }
q "create table t (id serial primary key, state text, at timestamptz default clock_timestamp())"
q "insert into t (state) values ('A')"

wait_archived() { # NAME SECONDS
    local i
    for ((i = 0; i < $2 * 5; i++)); do
        [ -f "$W/repo/wal/${1:0:8}/$1" ] && return 0
        sleep 0.2
    done
    return 1
}
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }

say base
pf --json backup --pg-physical --pg-conninfo "$CONN" >"$W/b1.json" 2>"$W/b1.err" ||
    fail "backup --pg-physical: $(cat "$W/b1.err")"
kind=$(json_field '["kind"]' <"$W/b1.json")
[ "$kind" = pg-physical ] || fail "snapshot kind $kind"
end_wal=$(json_field '["components"]["postgres-physical"]["end_wal"]' <"$W/b1.json")
archived=$(json_field '["components"]["postgres-physical"]["wal_archived"]' <"$W/b1.json")
[ "$archived" = True ] || fail "the base backup's end segment $end_wal was not archived"
id1=$(json_field '["id"]' <"$W/b1.json")
pf ls latest postgres-physical/base/global >"$W/ls.out"
grep -q pg_control "$W/ls.out" || fail "no global/pg_control in the snapshot: $(cat "$W/ls.out")"
pf ls "$id1" postgres-physical/base >"$W/ls.out"
grep -q backup_label "$W/ls.out" || fail "no backup_label in the snapshot"
pf --json backup --pg-physical --pg-conninfo "$CONN" >"$W/b2.json" 2>"$W/b2.err" ||
    fail "second backup --pg-physical: $(cat "$W/b2.err")"
read -r total added < <(json_field '["stats"]["bytes"], d["stats"]["bytes_new"]' <"$W/b2.json" | tr -d '(),')
[ "$total" -gt 0 ] && [ $((added * 4)) -lt "$total" ] ||
    fail "second base backup added $added of $total bytes: unchanged files did not deduplicate"
ok "base backups: end segment $end_wal archived; the second added $added of $total bytes"

say pitr
q "insert into t (state) values ('B'), ('B')"
b_at=$(q "select extract(epoch from max(at))::numeric(20,6) from t")
# The target: the first whole second after B's commits; C commits after it.
target_epoch=$(python3 -c "import math; print(math.floor($b_at) + 1)")
target=$(date -u -d "@$target_epoch" '+%Y-%m-%d %H:%M:%S')
for ((i = 0; i < 50; i++)); do
    now=$(q "select extract(epoch from clock_timestamp())")
    python3 -c "import sys; sys.exit(0 if $now > $target_epoch + 0.05 else 1)" && break
    sleep 0.1
done
q "insert into t (state) values ('C')"
c_at=$(q "select extract(epoch from max(at)) from t where state = 'C'")
python3 -c "import sys; sys.exit(0 if $c_at > $target_epoch else 1)" || fail "C committed before the target"
seg=$(q "select pg_walfile_name(pg_switch_wal())")
wait_archived "$seg" 60 || fail "segment $seg with C's commit not archived within 60 s"
pg_stop "$W/db"

port=$(harness_free_port)
mkdir -p "$W/restored/run"
harness_chown_pg "$W/restored/run"
printf 'PG_PORT=%s\nPG_BIN=%s\n' "$port" "$HARNESS_PGBIN" >"$W/restored/pg.env"
harness_on_exit "harness_as_owner '$HARNESS_PGBIN/pg_ctl' -D '$W/restored/pg' -m immediate -w stop"
rc=0
pf --json restore latest --pg-physical-target "$W/restored/pg" --to "$target" --pg-start \
    --pg-ctl-options "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$W/restored/run -c fsync=off" \
    >"$W/r.out" 2>"$W/r.err" || rc=$?
[ "$rc" = 0 ] || fail "restore --pg-physical-target --pg-start: exit $rc: $(cat "$W/r.out" "$W/r.err")"
grep -q "recovery_target_time = '$target+00'" "$W/restored/pg/postgresql.auto.conf" ||
    fail "no recovery_target_time in postgresql.auto.conf"
# --json: the base backup restored (the second, the newest before the target), its end,
# the data directory, and where recovery stopped (before C's commit, after the target).
check_restore_json() { # OUT SNAPSHOT-JSON DATADIR TARGET-EPOCH|latest STARTED
    python3 - "$@" <<'PY' || fail "the restore's JSON: $(cat "$1")"
import json, sys
from datetime import datetime
d, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
data_dir, target, started = sys.argv[3], sys.argv[4], sys.argv[5] == "1"
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
p, comp = d["pitr"], b["components"]["postgres-physical"]
assert d["snapshot"] == b["id"] == p["base_backup"]["snapshot"], (d, b["id"])
assert d["files"] > 0 and "rest" not in p and p["wal_gaps"] == 0, d
assert p["data_dir"] == data_dir, p
assert p["base_backup"]["end_lsn"] == comp["end_lsn"], (p["base_backup"], comp)
assert p["base_backup"]["end_wal"] == comp["end_wal"], (p["base_backup"], comp)
assert p["target"] == "latest" if target == "latest" else t(p["target"]) == int(target), p
if started:
    assert p["reached_by"] == "recovery", p
    assert p["recovery_line"].startswith("recovery stopping before commit"), p
    # The stop line's time is C's commit, the first after the target.
    assert t(p["base_backup"]["ended"]) <= int(target) <= t(p["reached"]), p
else:
    assert p["reached"] is None and p["reached_by"] == "not_started", p
PY
    python3 "$PF_SRC/tests/lib/check_json.py" "$PF_SRC/docs/JSON.md" restore "$1" >/dev/null ||
        fail "the restore's JSON does not match docs/JSON.md: $(python3 "$PF_SRC/tests/lib/check_json.py" "$PF_SRC/docs/JSON.md" restore "$1" 2>&1)"
}
check_restore_json "$W/r.out" "$W/b2.json" "$W/restored/pg" "$target_epoch" 1
[ "$(pg_psql "$W/restored" -Atc "select pg_is_in_recovery()")" = f ] || fail "not promoted"
states=$(pg_psql "$W/restored" -Atc "select string_agg(state, '' order by id) from t")
[ "$states" = ABB ] || fail "PITR to $target gave states '$states', wanted ABB ($(cat "$W/r.out"))"
reached=$(json_field '["pitr"]["reached"]' <"$W/r.out")
ok "PITR to $target: exactly A and B (recovery stopped before C, at $reached)"
pg_psql "$W/restored" -c "insert into t (state) values ('D')"
seg=$(pg_psql "$W/restored" -Atc "select pg_walfile_name(pg_switch_wal())")
wait_archived 00000002.history 60 || fail "00000002.history not archived after promotion"
wait_archived "$seg" 60 || fail "timeline-2 segment $seg not archived"
ok "after promotion the cluster archives timeline 2: 00000002.history and $seg"
harness_as_owner "$HARNESS_PGBIN/pg_ctl" -D "$W/restored/pg" -m fast -w stop >/dev/null

start_restored() { # DIR: as an operator would, by hand, then wait for the promotion
    local dir=$1 port i
    port=$(harness_free_port)
    mkdir -p "$dir/run"
    harness_chown_pg "$dir/run"
    harness_as_owner "$HARNESS_PGBIN/pg_ctl" -D "$dir/pg" -l "$dir/run/pg.log" -w -t 120 \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir/run -c fsync=off" \
        start >/dev/null || { cat "$dir/run/pg.log" >&2; return 1; }
    harness_on_exit "harness_as_owner '$HARNESS_PGBIN/pg_ctl' -D '$dir/pg' -m immediate -w stop"
    printf 'PG_PORT=%s\nPG_BIN=%s\n' "$port" "$HARNESS_PGBIN" >"$dir/pg.env"
    for ((i = 0; i < 600; i++)); do
        [ "$(pg_psql "$dir" -Atc "select pg_is_in_recovery()" 2>/dev/null)" = f ] && return 0
        sleep 0.1
    done
    cat "$dir/run/pg.log" >&2
    return 1
}

say latest
pf --json restore "$(json_field '["id"]' <"$W/b1.json")" --pg-physical-target "$W/restored2/pg" --to latest >"$W/r2.out" 2>"$W/r2.err" ||
    fail "restore --to latest: $(cat "$W/r2.out" "$W/r2.err")"
check_restore_json "$W/r2.out" "$W/b1.json" "$W/restored2/pg" latest 0
# Timeline 1's end: recovery would otherwise follow timeline 2 (also archived) to its end.
printf "recovery_target_timeline = '1'\n" >>"$W/restored2/pg/postgresql.auto.conf"
start_restored "$W/restored2" || fail "the --to latest cluster did not promote"
states=$(pg_psql "$W/restored2" -Atc "select string_agg(state, '' order by id) from t")
[ "$states" = ABBC ] || fail "--to latest on timeline 1 gave '$states', wanted ABBC"
ok "--to latest recovers every archived commit: $states"

say timeline
# The same base backup along timeline 2: recovery fetches 00000002.history from the
# archive to find where it forks from timeline 1, and gives A, B, B, then D (C was never
# on timeline 2). Pinned: the "latest" restore above promoted to a timeline 3 of its own.
mkdir -m 700 "$W/restored4"
harness_chown_pg "$W/restored4"
pf restore "$id1" --pg-physical-target "$W/restored4/pg" --to latest >"$W/r5.out" 2>&1 ||
    fail "restore --to latest (timeline 2): $(cat "$W/r5.out")"
printf "recovery_target_timeline = '2'\n" >>"$W/restored4/pg/postgresql.auto.conf"
start_restored "$W/restored4" || fail "the timeline-following cluster did not promote"
states=$(pg_psql "$W/restored4" -Atc "select string_agg(state, '' order by id) from t")
[ "$states" = ABBD ] || fail "--to latest across the promotion gave '$states', wanted ABBD"
tli=$(pg_psql "$W/restored4" -Atc "select timeline_id from pg_control_checkpoint()")
[ "$tli" -ge 3 ] || fail "recovery along timeline 2 should promote to timeline 3, is on $tli"
ok "recovery follows the archived 00000002.history onto timeline 2: $states, now on timeline $tli"
harness_as_owner "$HARNESS_PGBIN/pg_ctl" -D "$W/restored4/pg" -m fast -w stop >/dev/null

say collector
# A cluster that logs through logging_collector writes nothing more to pg_ctl's -l file:
# --pg-start still returns as soon as it has promoted, and not before (pg_is_in_recovery()
# is false at once). Archiving off: this timeline stays out of the repository.
mkdir -m 700 "$W/restored5" "$W/restored5/run"
harness_chown_pg "$W/restored5" "$W/restored5/run"
port=$(harness_free_port)
printf 'PG_PORT=%s\nPG_BIN=%s\n' "$port" "$HARNESS_PGBIN" >"$W/restored5/pg.env"
harness_on_exit "harness_as_owner '$HARNESS_PGBIN/pg_ctl' -D '$W/restored5/pg' -m immediate -w stop"
PERMAFROST_PROMOTE_WAIT=120 pf restore "$id1" --pg-physical-target "$W/restored5/pg" --to "$target" --pg-start \
    --pg-ctl-options "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$W/restored5/run -c fsync=off -c archive_mode=off -c logging_collector=on -c log_directory=$W/restored5/run" \
    >"$W/r6.out" 2>&1 || fail "restore --pg-start with logging_collector: $(cat "$W/r6.out")"
[ "$(pg_psql "$W/restored5" -Atc "select pg_is_in_recovery()")" = f ] ||
    fail "restore --pg-start returned before the cluster promoted"
states=$(pg_psql "$W/restored5" -Atc "select string_agg(state, '' order by id) from t")
[ "$states" = ABB ] || fail "PITR with logging_collector gave states '$states', wanted ABB"
ok "--pg-start with logging_collector: returned once promoted, states $states"
harness_as_owner "$HARNESS_PGBIN/pg_ctl" -D "$W/restored5/pg" -m fast -w stop >/dev/null

say kill
# kill -9 in the middle of a base backup: no snapshot, nothing damaged, the next one works.
# Another cluster, so another repository (two clusters' WAL names would collide).
pf_server_wrapper "$W" pf2 "$W/repo2" PERMAFROST_LOCK_WAIT=30 TZ=UTC
mkdir -m 700 "$W/repo2"
harness_chown_pg "$W/repo2"
pf2() { harness_as_owner "$W/pf2" "$@"; }
pf2 init >/dev/null
pg_start_archiving "$W/db2" "$W/pf2 wal-push %p"
pg_psql "$W/db2" -c "create table big as select g, repeat('x', 500) as pad from generate_series(1, 100000) g"
CONN2="host=127.0.0.1 port=$PG_PORT user=$PG_SUPERUSER password=$PG_SUPERPASS"
# Not through a shell function: $! must be runuser (whose child is permafrost: env execs)
# or permafrost itself.
KENV=(env PERMAFROST_PASSWORD_FILE="$W/pass" PERMAFROST_REPO="$W/repo2" PERMAFROST_KEY_CACHE="$W/kc"
    PERMAFROST_CONFIG="$W/empty.conf" "$PF" backup --pg-physical --pg-conninfo "$CONN2")
if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "${KENV[@]}" >/dev/null 2>&1 &
else
    "${KENV[@]}" >/dev/null 2>&1 &
fi
bgpid=$!
# Kill it once it has started (its lock is in the repository), bounded.
for ((i = 0; i < 100; i++)); do
    ls "$W/repo2/locks/"* >/dev/null 2>&1 && break
    sleep 0.05
done
sleep 0.2
pkill -9 -P "$bgpid" 2>/dev/null || true # runuser's child: the permafrost process itself
kill -9 "$bgpid" 2>/dev/null || true
for ((i = 0; i < 100; i++)); do # gone for sure before looking at the repository
    pgrep -P "$bgpid" >/dev/null 2>&1 || break
    sleep 0.05
done
wait "$bgpid" 2>/dev/null || true
n=$(pf2 snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" = 0 ] || fail "a killed base backup left a snapshot"
pf2 check >"$W/check.out" 2>&1 || fail "check after a killed base backup: $(cat "$W/check.out")"
pf2 backup --pg-physical --pg-conninfo "$CONN2" >/dev/null 2>"$W/b3.err" ||
    fail "base backup after the killed one: $(cat "$W/b3.err")"
n=$(pf2 snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" = 1 ] || fail "the base backup after the killed one wrote $n snapshots"
ok "kill -9 during a base backup: no snapshot, check passes, the next base backup succeeds"
pg_stop "$W/db2"

say refuse
rc=0
pf restore latest --pg-physical-target "$W/restored2/pg" >"$W/r3.out" 2>&1 || rc=$?
[ "$rc" = 6 ] || fail "restore onto a non-empty data directory: exit $rc, wanted 6"
ok "a non-empty target is refused: $(cat "$W/r3.out")"
say gap
# A segment after base backup 1's end goes missing: check names it and the base backup it
# cuts short; a restore of that base backup says where recovery will stop.
gap=$(python3 -c "n='$end_wal'; print(n[:8] + '%08X%08X' % divmod(int(n[8:16],16)*256 + int(n[16:],16) + 1, 256))")
[ -f "$W/repo/wal/00000001/$gap" ] || fail "no segment $gap to remove"
cp -p "$W/repo/wal/00000001/$gap" "$W/gap.saved"
rm "$W/repo/wal/00000001/$gap"
rc=0
pf check >"$W/check.out" 2>&1 || rc=$?
[ "$rc" = 4 ] || fail "check with a WAL gap: exit $rc, wanted 4: $(cat "$W/check.out")"
grep -q "WAL gap on timeline 1: $gap missing; recovery stops at $end_wal for base backup ${id1:0:8}" "$W/check.out" ||
    fail "check does not name the gap: $(cat "$W/check.out")"
mkdir -m 700 "$W/restored3"
harness_chown_pg "$W/restored3"
pf restore "$id1" --pg-physical-target "$W/restored3/pg" --to latest >"$W/r4.out" 2>&1 ||
    fail "restore with a gap: $(cat "$W/r4.out")"
grep -q "warning: WAL gap on timeline 1: $gap missing; recovery stops at $end_wal" "$W/r4.out" ||
    fail "restore does not warn about the gap: $(cat "$W/r4.out")"
ok "a missing segment: $(grep -m1 'WAL gap' "$W/check.out")"
cp -p "$W/gap.saved" "$W/repo/wal/00000001/$gap"

say retention
# Forgetting base backup 1 frees the WAL only it needed (before base backup 2's start);
# everything from there on stays, and check finds the chain whole.
id2=$(json_field '["id"]' <"$W/b2.json")
start2=$(json_field '["components"]["postgres-physical"]["start_wal"]' <"$W/b2.json")
pf forget --keep-last 1 --prune >"$W/forget.out" 2>&1 || fail "forget --prune: $(cat "$W/forget.out")"
pf snapshots >"$W/snaps.out"
grep -q "${id2:0:8}" "$W/snaps.out" && ! grep -q "${id1:0:8}" "$W/snaps.out" ||
    fail "forget --keep-last 1 kept the wrong base backup: $(cat "$W/snaps.out")"
grep -q "removed .* archived WAL file" "$W/forget.out" || fail "prune removed no WAL: $(cat "$W/forget.out")"
for f in "$W/repo/wal/00000001/"*; do
    n=$(basename "$f")
    case "$n" in *.history) continue ;; esac
    [[ "${n:0:24}" > "$start2" || "${n:0:24}" == "$start2" ]] || fail "prune kept $n, before $start2"
done
[ -f "$W/repo/wal/00000001/$start2" ] || fail "prune removed $start2, which base backup 2 needs"
[ -f "$W/repo/wal/00000002/00000002.history" ] || fail "prune removed a history file"
pf check >"$W/check.out" 2>&1 || fail "check after forget --prune: $(cat "$W/check.out")"
ok "forget --prune: WAL before $start2 removed, the rest kept, check passes"
echo "all PITR tests passed"

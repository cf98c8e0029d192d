#!/usr/bin/env bash
# permafrost wal-stream against real PostgreSQL servers (no archive_command: the receiver is
# the only way WAL reaches the repository):
#   stream    a physical slot is created; a switched segment arrives whole, byte for byte the
#             server's, under the name wal-push gives it; a commit in the segment still
#             being written arrives within seconds as a streamed partial; wal-fetch of that
#             segment gives the partial padded to the segment size; check passes;
#             snapshots and status name the newest point as segment + bytes, partial
#   stop      SIGTERM: exit 0, and what arrived before it is stored; while it is down the
#             slot keeps the WAL, and a restart resumes at the repository's newest segment
#             with nothing missing (check finds no gap)
#   reconnect the walsender is terminated, then the server restarts, under the running
#             receiver: it connects again by itself and later commits reach the repository
#             with no gap; a refused password exits 12 without retrying, as does a slot
#             that cannot be created
#   replica   a streaming standby of the primary: backup --pg-physical against the standby
#             (its end segment in the repository through wal-stream's partial), restored
#             to latest: it recovers and promotes with the rows committed on the primary
#   timeline  wal-stream against the standby; the standby is promoted: the stream of
#             timeline 1 ends, the receiver follows onto timeline 2 (00000002.history and
#             timeline-2 WAL in the repository) and check follows the switch, naming the
#             fork's segment when it goes missing
#   recycled  the server recycled WAL that never reached the repository: the receiver warns
#             and goes on from what the server has; check names the gap
#   stopwait  SIGTERM while connecting to a server that never answers, and while waiting to
#             connect again: exit 0 within 10 s (the attempt alone may take 30), with the clean stop message
set -eEuo pipefail
trap 'echo "FAIL: line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR

PF=${PERMAFROST:-$PWD/permafrost}
HARNESS=$(cd "$(dirname "$0")/../harness" && pwd)
. "$HARNESS/pg.sh"
. "$HARNESS/pfserver.sh"
export TZ=UTC

W=$(mktemp -d "${TMPDIR:-/tmp}/pf-walstream.XXXXXX")
STREAMS=()
cleanup() {
    local p
    for p in "${STREAMS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    harness_run_exit
    rm -rf "$W"
}
trap cleanup EXIT

say() { echo "== $*"; }
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*" >&2
    for f in "$W"/stream*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
    exit 1
}

pf_server_home "$W" walstream-test-passphrase
pf_server_wrapper "$W" pf "$W/repo" PERMAFROST_LOCK_WAIT=30 TZ=UTC
mkdir -m 700 "$W/repo" "$W/kc" "$W/out"
harness_chown_pg "$W/repo" "$W/kc" "$W/out"
pf() { harness_as_owner "$W/pf" "$@"; }
pf init >/dev/null

# The primary: WAL for replication, no archive_command at all.
PG_CONF_EXTRA="wal_level = replica
max_wal_senders = 6
max_replication_slots = 6
wal_keep_size = 64" PG_CTL_EXTRA="-c full_page_writes=on" pg_start "$W/db"
CONN="host=127.0.0.1 port=$PG_PORT user=$PG_SUPERUSER password=$PG_SUPERPASS"
q() { pg_psql "$W/db" -Atc "$1"; }
q "create table t (id serial primary key, state text, at timestamptz default clock_timestamp())"

STREAM_PID=
start_stream() { # LOG CONNINFO [ARGS...]: wal-stream in the background, its pid in STREAM_PID
    local log=$1 conn=$2
    shift 2
    if [ "$(id -u)" = 0 ]; then
        # setpriv execs: $! is the permafrost process itself, which SIGTERM must reach.
        setpriv --reuid=postgres --regid=postgres --init-groups --reset-env \
            "$W/pf" -v wal-stream --pg-conninfo "$conn" "$@" >"$log" 2>&1 &
    else
        "$W/pf" -v wal-stream --pg-conninfo "$conn" "$@" >"$log" 2>&1 &
    fi
    STREAM_PID=$!
    STREAMS+=("$STREAM_PID")
}
wait_for() { # SECONDS CMD...: until CMD succeeds, bounded
    local i
    for ((i = 0; i < $1 * 10; i++)); do
        "${@:2}" && return 0
        sleep 0.1
    done
    return 1
}
in_repo() { [ -f "$W/repo/wal/${1:0:8}/$1" ]; }
streamed_of() { ls "$W/repo/wal/${1:0:8}/" 2>/dev/null | grep "^$1\.[0-9A-F]\{8\}\.partial$" | sort | tail -1; }
has_streamed() { [ -n "$(streamed_of "$1")" ]; }
# streamed_through SEG BYTES: the repository holds SEG whole, or a streamed partial of at
# least its first BYTES (a partial stored before the commit waited for is not enough).
streamed_through() {
    local p
    in_repo "$1" && return 0
    p=$(streamed_of "$1")
    [ -n "$p" ] && [ $((16#$(echo "$p" | cut -d. -f2))) -ge "$2" ]
}

say stream
start_stream "$W/stream1.log" "$CONN"
wait_for 30 grep -q "streaming timeline 1 from" "$W/stream1.log" || fail "wal-stream did not start"
grep -q "created the physical replication slot permafrost" "$W/stream1.log" || fail "no slot created"
[ "$(q "select slot_type from pg_replication_slots where slot_name = 'permafrost'")" = physical ] ||
    fail "no physical slot permafrost on the server"
q "insert into t (state) values ('A')"
seg=$(q "select pg_walfile_name(pg_current_wal_insert_lsn())")
q "select pg_switch_wal()" >/dev/null
cp "$W/db/pg/pg_wal/$seg" "$W/seg.server"
wait_for 30 in_repo "$seg" || fail "segment $seg did not arrive whole"
pf wal-fetch "$seg" "$W/out/seg.fetched"
cmp -s "$W/seg.server" "$W/out/seg.fetched" || fail "the streamed segment $seg differs from the server's"
q "insert into t (state) values ('B')"
seg2=$(q "select pg_walfile_name(pg_current_wal_insert_lsn())")
wait_for 10 has_streamed "$seg2" || fail "no streamed partial of $seg2 within 10 s of a commit"
part=$(streamed_of "$seg2")
pf wal-fetch "$seg2" "$W/out/seg2.fetched" 2>"$W/fetch.err" || fail "wal-fetch $seg2: $(cat "$W/fetch.err")"
[ "$(stat -c %s "$W/out/seg2.fetched")" = 16777216 ] || fail "wal-fetch of a streamed partial is not padded"
n=$((16#${part:25:8}))
cmp -s -n "$n" "$W/out/seg2.fetched" "$W/db/pg/pg_wal/$seg2" || fail "the partial's bytes differ from the server's"
cmp -s -i "$n" -n $((16777216 - n)) "$W/out/seg2.fetched" /dev/zero || fail "the padding is not zeros"
pf check >"$W/check.out" 2>&1 || fail "check: $(cat "$W/check.out")"
# status's RPO point is the streamed part, not the older whole segment.
newest=$(pf --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["wal"]["newest_segment"])')
case "$newest" in "$seg2".*.partial) ;; *) fail "status names $newest as the newest point, not a part of $seg2" ;; esac
# ... and snapshots and status say how far into it (at least as far: the receiver may store
# a longer part meanwhile), and that it is partial.
newest_bytes=$((16#$(echo "$newest" | cut -d. -f2)))
pf snapshots >"$W/snaps.out" 2>&1
said=$(sed -n "s/^WAL archived up to segment $seg2 + \([0-9]*\) bytes, a streamed partial (pushed .*/\1/p" "$W/snaps.out")
[ -n "$said" ] && [ "$said" -ge "$newest_bytes" ] ||
    fail "snapshots does not say the newest point is $newest_bytes+ bytes into $seg2, partial: $(tail -2 "$W/snaps.out")"
pf --json status | python3 -c "
import json, sys
w = json.load(sys.stdin)['wal']
assert w['partial'] is True and w['partial_bytes'] >= $newest_bytes, w
assert w['partial_bytes'] == int(w['newest_segment'].split('.')[1], 16), w
" || fail "status --json does not say the newest point is partial, $newest_bytes+ bytes"
ok "slot created; $seg arrived whole and exact; $part (a commit's segment, $n bytes) within seconds, fetched padded"

say stop
# A receiver that stores no partial on its own (--interval 3600): C's commit reaches it
# (the server hears so), then SIGTERM must store it.
kill -TERM "$STREAM_PID"
wait "$STREAM_PID" || fail "wal-stream did not exit 0 on SIGTERM"
start_stream "$W/stream1b.log" "$CONN" --interval 3600
wait_for 30 grep -q "streaming timeline 1 from" "$W/stream1b.log" || fail "wal-stream did not restart"
q "insert into t (state) values ('C')"
at_c=$(q "select pg_current_wal_insert_lsn()")
received() { [ "$(q "select coalesce(bool_or(write_lsn >= '$at_c'::pg_lsn), false) from pg_stat_replication where application_name = 'permafrost-wal-stream'")" = t ]; }
wait_for 20 received || fail "the receiver did not report C's WAL as received"
kill -TERM "$STREAM_PID"
rc=0
wait "$STREAM_PID" || rc=$?
[ "$rc" = 0 ] || fail "wal-stream exited $rc on SIGTERM"
grep -q "stopped: the repository holds the WAL up to" "$W/stream1b.log" || fail "no stop line"
held=$(sed -n 's/.*holds the WAL up to \([0-9A-F/]*\).*/\1/p' "$W/stream1b.log")
[ "$(q "select '$held'::pg_lsn >= '$at_c'::pg_lsn")" = t ] ||
    fail "stopped holding $held, before C's commit at $at_c"
# Down: the slot keeps what was not stored; a segment completes meanwhile.
q "insert into t (state) values ('D')"
seg3=$(q "select pg_walfile_name(pg_current_wal_insert_lsn())")
q "select pg_switch_wal()" >/dev/null
q "checkpoint" >/dev/null
[ -f "$W/db/pg/pg_wal/$seg3" ] || fail "the server did not keep $seg3 for the slot"
start_stream "$W/stream2.log" "$CONN"
wait_for 30 in_repo "$seg3" || fail "after a restart, $seg3 (completed while down) did not arrive"
grep -q "streaming timeline 1 from" "$W/stream2.log" || fail "no start line"
pf check >"$W/check.out" 2>&1 || fail "check after the restart: $(cat "$W/check.out")"
ok "SIGTERM stored up to $held and exited 0; restarted, it caught up with $seg3; no gap"

say reconnect
# The walsender is killed, then the server restarts, under the running receiver: it says
# so, connects again by itself (no exit, no systemd), and commits made afterwards reach the
# repository; check finds no gap. A refused password is no reason to try again: exit 12.
q "create table u (id serial primary key, at timestamptz default clock_timestamp())"
walsender() { q "select pid from pg_stat_replication where application_name = 'permafrost-wal-stream'"; }
streams_in() { grep -c "streaming timeline 1 from" "$1" || true; }
# through_commit: the repository holds the WAL up to the last commit (whole or streamed)
through_commit() {
    local seg off
    seg=$(q "select pg_walfile_name(pg_current_wal_insert_lsn())")
    off=$(q "select (pg_current_wal_insert_lsn() - '0/0'::pg_lsn) % 16777216")
    wait_for 20 streamed_through "$seg" "$off"
}
wait_for 20 test -n "$(walsender)" || fail "no walsender for the receiver"
n0=$(streams_in "$W/stream2.log")
q "select pg_terminate_backend($(walsender))" >/dev/null
wait_for 20 grep -q "connecting again in 1 s (attempt 1)" "$W/stream2.log" ||
    fail "no reconnect line after the walsender was terminated"
streamed_again() { [ "$(streams_in "$W/stream2.log")" -gt "$n0" ]; }
wait_for 30 streamed_again || fail "the receiver did not stream again after the walsender was terminated"
kill -0 "$STREAM_PID" || fail "wal-stream exited when its walsender was terminated"
q "insert into u default values"
through_commit || fail "a commit after the reconnect did not reach the repository"
n1=$(streams_in "$W/stream2.log")
harness_as_owner "$HARNESS_PGBIN/pg_ctl" -D "$W/db/pg" -m fast -w restart >/dev/null
restreamed() { [ "$(streams_in "$W/stream2.log")" -gt "$n1" ]; }
wait_for 40 restreamed || fail "the receiver did not stream again after the server restarted"
kill -0 "$STREAM_PID" || fail "wal-stream exited when the server restarted"
q "insert into u default values"
through_commit || fail "a commit after the server's restart did not reach the repository"
seg=$(q "select pg_walfile_name(pg_current_wal_insert_lsn())")
q "select pg_switch_wal()" >/dev/null
wait_for 30 in_repo "$seg" || fail "$seg did not arrive whole after the restart"
pf wal-fetch "$seg" "$W/out/seg.reconnect"
cmp -s "$W/db/pg/pg_wal/$seg" "$W/out/seg.reconnect" || fail "$seg differs from the server's after the reconnects"
pf check >"$W/check.out" 2>&1 || fail "check after the reconnects: $(cat "$W/check.out")"
attempts=$(grep -c "connecting again in" "$W/stream2.log")
rc=0
timeout 60 "$W/pf" wal-stream --pg-conninfo "host=127.0.0.1 port=$PG_PORT user=$PG_SUPERUSER password=wrong" \
    >"$W/streamauth.log" 2>&1 || rc=$?
[ "$rc" = 12 ] || fail "wal-stream with a wrong password exited $rc, wanted 12 (refused): $(cat "$W/streamauth.log")"
grep -q "password authentication failed" "$W/streamauth.log" && ! grep -q "connecting again" "$W/streamauth.log" ||
    fail "a refused password: $(cat "$W/streamauth.log")"
# No slot can be created (max_replication_slots reached): no retry either.
free=$(q "select current_setting('max_replication_slots')::int - count(*) from pg_replication_slots")
for ((i = 0; i < free; i++)); do q "select pg_create_physical_replication_slot('filler_$i')" >/dev/null; done
rc=0
timeout 60 "$W/pf" wal-stream --pg-conninfo "$CONN" --slot no_room >"$W/streamslot.log" 2>&1 || rc=$?
for ((i = 0; i < free; i++)); do q "select pg_drop_replication_slot('filler_$i')" >/dev/null; done
[ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "all replication slots are in use" "$W/streamslot.log" &&
    ! grep -q "connecting again" "$W/streamslot.log" ||
    fail "wal-stream without room for its slot: exit $rc: $(cat "$W/streamslot.log")"
ok "walsender terminated, then the server restarted: the receiver connected again ($attempts attempts logged), later commits and $seg reached the repository, no gap; a wrong password exits 12 at once, no room for a slot exits $rc"

say replica
pg_start_standby "$W/sb" "$W/db"
SCONN="host=127.0.0.1 port=$PG_PORT user=$PG_SUPERUSER password=$PG_SUPERPASS"
sq() { pg_psql "$W/sb" -Atc "$1"; }
[ "$(sq "select pg_is_in_recovery()")" = t ] || fail "the standby is not in recovery"
q "insert into t (state) values ('E')"
lsn=$(q "select pg_current_wal_insert_lsn()")
replayed() { [ "$(sq "select pg_last_wal_replay_lsn() >= '$1'::pg_lsn")" = t ]; }
wait_for 30 replayed "$lsn" || fail "the standby did not replay $lsn"
PERMAFROST_WAL_WAIT=30 pf --json backup --pg-physical --pg-conninfo "$SCONN" >"$W/b.json" 2>"$W/b.err" ||
    fail "backup --pg-physical on the standby: $(cat "$W/b.err")"
archived=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["components"]["postgres-physical"]["wal_archived"])' <"$W/b.json")
[ "$archived" = True ] || fail "the standby backup's end WAL did not reach the repository: $(cat "$W/b.err")"
q "insert into t (state) values ('F')"
seg=$(q "select pg_walfile_name(pg_current_wal_insert_lsn())")
off=$(q "select (pg_current_wal_insert_lsn() - '0/0'::pg_lsn) % (select setting::bigint from pg_settings where name = 'wal_segment_size')")
wait_for 10 streamed_through "$seg" "$off" || fail "F's commit did not reach the repository"
mkdir -m 700 "$W/r1"
harness_chown_pg "$W/r1"
port=$(harness_free_port)
mkdir -p "$W/r1/run"
harness_chown_pg "$W/r1/run"
printf 'PG_PORT=%s\nPG_BIN=%s\n' "$port" "$HARNESS_PGBIN" >"$W/r1/pg.env"
harness_on_exit "harness_as_owner '$HARNESS_PGBIN/pg_ctl' -D '$W/r1/pg' -m immediate -w stop"
pf restore latest --pg-physical-target "$W/r1/pg" --pg-start \
    --pg-ctl-options "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$W/r1/run -c fsync=off" \
    >"$W/r1.out" 2>&1 || fail "restore of the standby's base backup: $(cat "$W/r1.out")"
states=$(pg_psql "$W/r1" -Atc "select string_agg(state, '' order by id) from t")
[ "$states" = ABCDEF ] || fail "the standby's base backup recovered '$states', wanted ABCDEF"
harness_as_owner "$HARNESS_PGBIN/pg_ctl" -D "$W/r1/pg" -m fast -w stop >/dev/null
ok "a base backup taken on the standby restores and recovers to latest: $states"

say timeline
kill -TERM "$STREAM_PID"
wait "$STREAM_PID" || fail "wal-stream (primary) did not exit 0"
start_stream "$W/stream3.log" "$SCONN" --slot standby_slot
wait_for 30 grep -q "streaming timeline 1 from" "$W/stream3.log" || fail "wal-stream on the standby did not start"
pg_stop "$W/db" # the primary is lost; the standby takes over
harness_as_owner "$HARNESS_PGBIN/pg_ctl" -D "$W/sb/pg" -w promote >/dev/null
promoted() { [ "$(sq "select pg_is_in_recovery()")" = f ]; }
wait_for 30 promoted || fail "the standby did not promote"
sq "insert into t (state) values ('G')"
seg=$(sq "select pg_walfile_name(pg_current_wal_insert_lsn())")
sq "select pg_switch_wal()" >/dev/null
wait_for 30 grep -q "timeline 1 ended; timeline 2 starts at" "$W/stream3.log" ||
    fail "the receiver did not see timeline 1 end"
wait_for 30 in_repo 00000002.history || fail "00000002.history not stored"
wait_for 30 in_repo "$seg" || fail "timeline-2 segment $seg not stored"
pf check >"$W/check.out" 2>&1 || fail "check across the switch: $(cat "$W/check.out")"
sq "insert into t (state) values ('H')"
seg6=$(sq "select pg_walfile_name(pg_current_wal_insert_lsn())")
sq "select pg_switch_wal()" >/dev/null
wait_for 30 in_repo "$seg6" || fail "timeline-2 segment $seg6 not stored"
kill -TERM "$STREAM_PID"
wait "$STREAM_PID" || fail "wal-stream (standby) did not exit 0"
# The fork's own segment goes missing: check follows the switch from the history file and
# names it (a chain looked at per timeline alone starts at $seg6 and sees nothing wrong).
mv "$W/repo/wal/00000002/$seg" "$W/fork.saved"
rc=0
pf check >"$W/check.out" 2>&1 || rc=$?
[ "$rc" = 4 ] || fail "check without the fork's segment: exit $rc, wanted 4: $(cat "$W/check.out")"
grep -q "WAL gap on timeline 2: $seg missing; timeline 2 forks from timeline 1 in $seg" "$W/check.out" ||
    fail "check does not name the fork's missing segment: $(cat "$W/check.out")"
mv "$W/fork.saved" "$W/repo/wal/00000002/$seg"
ok "promotion: the receiver followed onto timeline 2 ($seg, 00000002.history); check follows the fork and names its missing segment"
say recycled
# The server recycled WAL that never reached the repository (its slot dropped while the
# receiver was down): the receiver says so and goes on from what the server has; check
# names the gap.
sq "select pg_drop_replication_slot('standby_slot')" >/dev/null
for i in 1 2 3 4 5 6 7; do
    sq "insert into t (state) values ('R')"
    sq "select pg_switch_wal()" >/dev/null
done
sq "checkpoint" >/dev/null
sq "checkpoint" >/dev/null
next=$(python3 -c "n='$seg6'; print(n[:8] + '%08X%08X' % divmod(int(n[8:16],16)*256 + int(n[16:],16) + 1, 256))")
[ ! -f "$W/sb/pg/pg_wal/$next" ] || fail "the server still has $next: nothing to test"
start_stream "$W/stream4.log" "$SCONN" --slot fresh_slot
wait_for 30 grep -q "has already been removed" "$W/stream4.log" || fail "no warning about recycled WAL"
wait_for 30 grep -q "streaming timeline 2 from" "$W/stream4.log" || fail "did not go on streaming"
sq "insert into t (state) values ('S')"
seg7=$(sq "select pg_walfile_name(pg_current_wal_insert_lsn())")
sq "select pg_switch_wal()" >/dev/null
wait_for 30 in_repo "$seg7" || fail "after the recycled WAL, $seg7 did not arrive whole"
kill -TERM "$STREAM_PID"
wait "$STREAM_PID" || fail "wal-stream (recycled) did not exit 0"
rc=0
pf check >"$W/check.out" 2>&1 || rc=$?
[ "$rc" = 4 ] && grep -q "WAL gap on timeline 2: $next" "$W/check.out" ||
    fail "check after recycled WAL: exit $rc, no gap from $next: $(cat "$W/check.out")"
ok "recycled WAL: the receiver warned and went on; check names the gap from $next"
say stopwait
# A listener that accepts and never answers: the connection attempt waits up to 30 s for
# it, which a stop must cut short. Its port is the one the kernel gave it.
python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
    print("accepted", flush=True)
' >"$W/mute.out" &
STREAMS+=("$!")
wait_for 30 test -s "$W/mute.out" || fail "the mute listener did not start"
mute=$(head -1 "$W/mute.out")
stop_within() { # LOG SECONDS: SIGTERM to STREAM_PID; it must exit 0 within SECONDS, stopped cleanly
    local t0=$SECONDS rc=0
    kill -TERM "$STREAM_PID"
    wait_for "$2" sh -c "! kill -0 $STREAM_PID 2>/dev/null" ||
        fail "wal-stream still running $2 s after SIGTERM ($(tail -1 "$1"))"
    wait "$STREAM_PID" || rc=$?
    [ "$rc" = 0 ] || fail "wal-stream exited $rc on SIGTERM while not connected"
    grep -q "stopped" "$1" || fail "no stop message in $1"
    echo "stopped in $((SECONDS - t0)) s"
}
start_stream "$W/stream5.log" "host=127.0.0.1 port=$mute user=nobody connect_timeout=0"
wait_for 30 grep -q accepted "$W/mute.out" || fail "wal-stream did not connect to the mute listener"
stop_within "$W/stream5.log" 10
refused=$(harness_free_port)
start_stream "$W/stream6.log" "host=127.0.0.1 port=$refused user=nobody"
wait_for 30 grep -q "connecting again in" "$W/stream6.log" || fail "no backoff: $(cat "$W/stream6.log")"
stop_within "$W/stream6.log" 10
ok "SIGTERM while connecting to a mute server and during the backoff: exit 0 within seconds"
echo "all wal-stream tests passed"

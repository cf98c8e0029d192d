#!/usr/bin/env bash
# The recovery point objective, measured: under a steady load (one committed row every
# 20 ms, each recording its commit time), the whole server is killed with SIGKILL (the
# machine is lost: nothing of its data directory is used again), the newest base backup
# is restored to latest onto another cluster, and the committed rows that are missing are
# counted. Three servers side by side, loaded and killed at the same moment:
#   archive   archive_command = 'permafrost wal-push %p', archive_timeout = 2 s: nothing
#             committed more than ARCHIVE_BOUND (4) seconds before the kill is missing
#   stream    permafrost wal-stream, no archive_command (the receiver dies with the machine
#             too): nothing older than STREAM_BOUND (5) seconds is missing
#   off       the control: wal-stream stopped after the base backup, nothing archived after
#             it: the same assertion must fail (it would pass anything otherwise)
# The measured losses (seconds of commits lost) are printed as "RPO <case>: ...".
set -eEuo pipefail
trap 'echo "FAIL: line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR

PF=${PERMAFROST:-$PWD/permafrost}
HARNESS=$(cd "$(dirname "$0")/../harness" && pwd)
. "$HARNESS/pg.sh"
. "$HARNESS/pfserver.sh"
export TZ=UTC
LOAD_SECONDS=${RPO_LOAD_SECONDS:-6}
ARCHIVE_TIMEOUT=2
ARCHIVE_BOUND=4
STREAM_BOUND=5

W=$(mktemp -d "${TMPDIR:-/tmp}/pf-rpo.XXXXXX")
declare -A STREAM LOADER
cleanup() {
    local p
    for p in "${STREAM[@]}" "${LOADER[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    harness_run_exit
    rm -rf "$W"
}
trap cleanup EXIT

say() { echo "== $*"; }
ok() { echo "ok: $* (${SECONDS} s)"; }
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
wait_for() { # SECONDS CMD...: until CMD succeeds, bounded
    local i
    for ((i = 0; i < $1 * 10; i++)); do
        "${@:2}" && return 0
        sleep 0.1
    done
    return 1
}

pf_server_home "$W" rpo-test-passphrase
CASES=(archive stream off)
for c in "${CASES[@]}"; do
    pf_server_wrapper "$W" "pf-$c" "$W/repo-$c" PERMAFROST_LOCK_WAIT=30 TZ=UTC
    mkdir -m 700 "$W/repo-$c" "$W/restored-$c"
    harness_chown_pg "$W/repo-$c" "$W/restored-$c"
done
mkdir -m 700 "$W/kc"
harness_chown_pg "$W/kc"
pfc() { # CASE ARGS...
    local c=$1
    shift
    harness_as_owner "$W/pf-$c" "$@"
}
conn() { (. "$W/$1/pg.env" && echo "host=127.0.0.1 port=$PG_PORT user=$PG_SUPERUSER password=$PG_SUPERPASS"); }
start_stream() { # CASE
    local c=$1
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=postgres --regid=postgres --init-groups --reset-env \
            "$W/pf-$c" -v wal-stream --pg-conninfo "$(conn "$c")" >"$W/stream-$c.log" 2>&1 &
    else
        "$W/pf-$c" -v wal-stream --pg-conninfo "$(conn "$c")" >"$W/stream-$c.log" 2>&1 &
    fi
    STREAM[$c]=$!
    wait_for 30 grep -qs "streaming timeline" "$W/stream-$c.log" ||
        fail "$c: wal-stream did not start: $(cat "$W/stream-$c.log")"
}

say setup
# The three servers are set up side by side (the machine is shared: seconds count).
# Commits as a Mastodon server makes them (synchronous_commit = on, the default).
setup_one() { # CASE: in a subshell; the caller registered the server's cleanup
    local c=$1
    pfc "$c" init >/dev/null
    if [ "$c" = archive ]; then
        PG_CONF_EXTRA="wal_level = replica
archive_mode = on
archive_command = '$W/pf-$c wal-push %p'
archive_timeout = $ARCHIVE_TIMEOUT
max_wal_senders = 4" PG_CTL_EXTRA="-c synchronous_commit=on" pg_start "$W/$c"
    else
        PG_CONF_EXTRA="wal_level = replica
max_wal_senders = 4
max_replication_slots = 4" PG_CTL_EXTRA="-c synchronous_commit=on" pg_start "$W/$c"
    fi
    # The server outlives this subshell: its cleanup is the caller's.
    HARNESS_EXIT_CMDS=()
    trap - EXIT
    pg_psql "$W/$c" -c "create table t (id bigserial primary key, at timestamptz not null default clock_timestamp())" \
        -c "create procedure load(secs float8) language plpgsql as \$\$
            declare until timestamptz := clock_timestamp() + secs * interval '1 second';
            begin
                while clock_timestamp() < until loop
                    insert into t default values;
                    commit;
                    perform pg_sleep(0.02);
                end loop;
            end \$\$"
}
bg=()
for c in "${CASES[@]}"; do
    harness_on_exit "pg_kill '$W/$c'"
    setup_one "$c" >"$W/setup-$c.out" 2>&1 &
    bg+=($!)
done
for c in "${CASES[@]}"; do wait "${bg[0]}" || fail "$c: setup: $(cat "$W/setup-$c.out")"; bg=("${bg[@]:1}"); done
for c in stream off; do start_stream "$c"; done
bg=()
for c in "${CASES[@]}"; do
    PERMAFROST_WAL_WAIT=30 pfc "$c" backup --pg-physical --pg-conninfo "$(conn "$c")" >"$W/backup-$c.out" 2>&1 &
    bg+=($!)
done
for c in "${CASES[@]}"; do wait "${bg[0]}" || fail "$c: backup --pg-physical: $(cat "$W/backup-$c.out")"; bg=("${bg[@]:1}"); done
kill -TERM "${STREAM[off]}"
wait "${STREAM[off]}" || fail "off: wal-stream did not stop cleanly"
unset "STREAM[off]"
ok "three servers with a base backup each: archive_command, wal-stream, nothing after the backup"

say load
for c in "${CASES[@]}"; do
    pg_psql "$W/$c" -c "call load(120)" >/dev/null 2>&1 &
    LOADER[$c]=$!
done
loaded() { # every server has committed LOAD_SECONDS worth of rows
    local c span
    for c in "${CASES[@]}"; do
        span=$(pg_psql "$W/$c" -Atc "select coalesce(extract(epoch from max(at) - min(at)), 0) >= $LOAD_SECONDS from t")
        [ "$span" = t ] || return 1
    done
}
wait_for 60 loaded || fail "the load did not run for $LOAD_SECONDS s"
# What each server has committed (its own view, a moment before the kill), then the kill:
# every process of the three servers and the receivers, at once.
for c in "${CASES[@]}"; do
    pg_psql "$W/$c" -Atc "select id, extract(epoch from at) from t order by id" >"$W/truth-$c"
done
pids=()
for c in "${CASES[@]}"; do
    pm=$(head -1 "$W/$c/pg/postmaster.pid")
    pids+=("$pm" $(pgrep -P "$pm" || true))
done
pids+=("${STREAM[@]}")
kill_at=$(date +%s.%N)
kill -9 "${pids[@]}" 2>/dev/null || true
for c in "${CASES[@]}"; do
    wait "${LOADER[$c]}" 2>/dev/null || true
    unset "LOADER[$c]"
done
for p in "${STREAM[@]}"; do wait "$p" 2>/dev/null || true; done
STREAM=()
ok "loaded for $LOAD_SECONDS s, then every server and receiver killed with SIGKILL"

say restore
bg=()
for c in "${CASES[@]}"; do
    port=$(harness_free_port)
    mkdir -p "$W/restored-$c/run"
    harness_chown_pg "$W/restored-$c/run"
    printf 'PG_PORT=%s\nPG_BIN=%s\nPG_SUPERUSER=%s\nPG_SUPERPASS=%s\n' "$port" "$HARNESS_PGBIN" \
        "$PG_SUPERUSER" "$PG_SUPERPASS" >"$W/restored-$c/pg.env"
    harness_on_exit "harness_as_owner '$HARNESS_PGBIN/pg_ctl' -D '$W/restored-$c/pg' -m immediate -w stop"
    pfc "$c" restore latest --pg-physical-target "$W/restored-$c/pg" --pg-start \
        --pg-ctl-options "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$W/restored-$c/run -c fsync=off -c archive_mode=off" \
        >"$W/restore-$c.out" 2>&1 &
    bg+=($!)
done
for c in "${CASES[@]}"; do
    wait "${bg[0]}" || fail "$c: restore --to latest: $(cat "$W/restore-$c.out")"
    bg=("${bg[@]:1}")
    pg_psql "$W/restored-$c" -Atc "select id from t order by id" >"$W/got-$c"
done
ok "each restored to latest and promoted"

# assess CASE BOUND: 0 when no row committed more than BOUND seconds before the kill is
# missing; prints the loss either way.
assess() {
    python3 - "$W/truth-$1" "$W/got-$1" "$kill_at" "$2" "$1" <<'EOF'
import sys
truth = {}
for line in open(sys.argv[1]):
    i, at = line.split("|")
    truth[int(i)] = float(at)
got = {int(l) for l in open(sys.argv[2]) if l.strip()}
kill_at, bound, case = float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
missing = [at for i, at in truth.items() if i not in got]
kept = [at for i, at in truth.items() if i in got]
oldest = kill_at - min(missing) if missing else 0.0
newest_kept = kill_at - max(kept) if kept else float("inf")
print(f"RPO {case}: {len(missing)} of {len(truth)} committed rows missing; the oldest missing "
      f"committed {oldest:.2f} s before the kill; the newest restored {newest_kept:.2f} s before "
      f"(bound {bound:g} s)")
sys.exit(1 if missing and oldest > bound else 0)
EOF
}
say assess
assess archive "$ARCHIVE_BOUND" || fail "archive_command lost commits older than $ARCHIVE_BOUND s"
assess stream "$STREAM_BOUND" || fail "wal-stream lost commits older than $STREAM_BOUND s"
if assess off "$STREAM_BOUND"; then
    fail "with nothing archived after the base backup the assertion still passed: it cannot fail"
fi
ok "archive_command within $ARCHIVE_BOUND s, wal-stream within $STREAM_BOUND s; the control (nothing archived) fails the same assertion"
echo "all RPO tests passed"

#!/usr/bin/env bash
# archive_command throughput: permafrost wal-push against pgBackRest 2.45's archive-push on
# the same small cluster, in one run (issue 12).
#
#   bench/walpush.sh WORKDIR
#
# Starts its own PostgreSQL 15 cluster (fsync and full_page_writes on, as in production),
# fills it with `pgbench -i -s BENCH_SCALE` and measures, for each tool in turn (the order
# rotating from run to run), the backlog drain: archiving paused (archive_command = ''),
# row updates until BENCH_BACKLOG_SEGMENTS segments are written, then the tool's
# archive_command is set and the time until no .ready file is left gives segments/s.
# PostgreSQL's archiver calls the command once per segment: this is the per-call cost,
# and with permafrost's default --batch what it amortises over the ready segments.
# Every call runs under /usr/bin/time: CPU per segment is the drain's user+sys over the
# segments archived, peak RSS the largest of any call. Tools:
#   permafrost        wal-push %p (the default batch of 8)
#   permafrost-b1     wal-push --batch 1 %p (one segment per call, no spool)
#   pgbackrest        archive-push %p
#   pgbackrest-l1     archive-push --compress-level=1 %p (the zstd level permafrost's WAL
#                     uses, for a like-for-like comparison)
#   pgbackrest-async  archive-push with archive-async (its background pusher is not under
#                     /usr/bin/time: its CPU and RSS are not counted, its time is)
# Settings chosen for comparability: permafrost's defaults (WAL at zstd level 1, AES-256-GCM);
# pgBackRest compress-type=zst, compress-level=3, repo1-cipher-type=aes-256-cbc,
# process-max=2. Prints the raw lines (WORKDIR/results.tsv) and a Markdown table of medians
# and ratios.
#
# Environment: PERMAFROST (binary, default ./permafrost), BENCH_SCALE (10), BENCH_RUNS (3),
# BENCH_BACKLOG_SEGMENTS (24), BENCH_TOOLS (the five above), BENCH_KEEP=1 keeps WORKDIR.
# Needs root (the cluster runs as postgres), pgbackrest and /usr/bin/time.
set -euo pipefail

[ $# = 1 ] || {
    echo "usage: bench/walpush.sh WORKDIR" >&2
    exit 2
}
PF=${PERMAFROST:-./permafrost}
case "$PF" in /*) ;; *) PF=$PWD/$PF ;; esac
W=$1
case "$W" in /*) ;; *) W=$PWD/$W ;; esac
SCALE=${BENCH_SCALE:-10}
RUNS=${BENCH_RUNS:-3}
BACKLOG=${BENCH_BACKLOG_SEGMENTS:-24}
TOOLS=${BENCH_TOOLS:-permafrost permafrost-b1 pgbackrest pgbackrest-l1 pgbackrest-async}
PGBIN=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || true)

die() {
    echo "bench: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || die "run as root (the cluster runs as the postgres OS user)"
[ -x "$PF" ] || die "$PF is not executable: run make, or set PERMAFROST"
[ -n "$PGBIN" ] || die "PostgreSQL 15 is not installed (/usr/lib/postgresql/15/bin)"
command -v pgbackrest >/dev/null || die "pgbackrest is missing: apt-get install -y pgbackrest"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package: time)"
say() { echo "== $(date -u +%H:%M:%S) $*" >&2; }

rm -rf "$W"
mkdir -p "$W"
chmod 711 "$W"
chmod o+x "$(dirname "$W")" 2>/dev/null || true
R=$W/results.tsv
: >"$R"
as_pg() { runuser -u postgres -- "$@"; }
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || {
            echo "$p"
            return 0
        }
    done
    die "no free port"
}
# result TOOL RUN METRIC VALUE
result() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$R"; }

cp "$PF" "$W/permafrost"
printf 'bench-passphrase\n' >"$W/pass"
: >"$W/empty.conf"
mkdir -p "$W/kc" "$W/repo" "$W/pgbr-repo" "$W/pgbr-spool" "$W/pgbr-log" "$W/pgbr-lock" "$W/time"
cat >"$W/pf" <<EOF
#!/bin/sh
export PERMAFROST_PASSWORD_FILE=$W/pass PERMAFROST_REPO=$W/repo PERMAFROST_KEY_CACHE=$W/kc
export PERMAFROST_CONFIG=$W/empty.conf PERMAFROST_LOCK_WAIT=60
unset PERMAFROST_PASSWORD
exec $W/permafrost "\$@"
EOF
PORT=$(free_port)
DB=$W/db
cat >"$W/pgbackrest.conf" <<EOF
[global]
repo1-path=$W/pgbr-repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=bench-passphrase
repo1-retention-full=99
compress-type=zst
compress-level=3
process-max=2
log-path=$W/pgbr-log
lock-path=$W/pgbr-lock
spool-path=$W/pgbr-spool
log-level-console=warn
log-level-file=info

[bench]
pg1-path=$DB/pg
pg1-socket-path=$DB/run
pg1-port=$PORT
EOF
cat >"$W/pgbackrest" <<EOF
#!/bin/sh
exec pgbackrest --config=$W/pgbackrest.conf --stanza=bench "\$@"
EOF
chmod 755 "$W/pf" "$W/pgbackrest" "$W/permafrost"
chmod 600 "$W/pass"
chmod 644 "$W/empty.conf" "$W/pgbackrest.conf"
chown -R postgres: "$W/pass" "$W/kc" "$W/repo" "$W/pgbr-repo" "$W/pgbr-spool" "$W/pgbr-log" \
    "$W/pgbr-lock" "$W/time"
chmod 700 "$W/kc"

# The archive_command of each tool under /usr/bin/time: elapsed, user, sys, peak RSS of
# every call, one line each (%% is a literal % for PostgreSQL).
archive_cmd() { # TOOL RUN
    local t="/usr/bin/time -f %%e_%%U_%%S_%%M -a -o $W/time/$1.$2"
    case $1 in
    permafrost) echo "$t $W/pf wal-push %p" ;;
    permafrost-b1) echo "$t $W/pf wal-push --batch 1 %p" ;;
    pgbackrest) echo "$t $W/pgbackrest archive-push %p" ;;
    pgbackrest-l1) echo "$t $W/pgbackrest --compress-level=1 archive-push %p" ;;
    pgbackrest-async) echo "$t $W/pgbackrest --archive-async archive-push %p" ;;
    both) echo "$W/pf wal-push --batch 1 %p && $W/pgbackrest archive-push %p" ;;
    esac
}

CLUSTER=
cleanup() {
    [ -z "$CLUSTER" ] || as_pg "$PGBIN/pg_ctl" -D "$CLUSTER" -m immediate -w stop >/dev/null 2>&1 || true
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
sql() { as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DB/run" -p "$PORT" -d postgres -Atc "$1"; }
set_archive() { # COMMAND (or '')
    local c=${1//\'/\'\'}
    sql "alter system set archive_command = '$c'" >/dev/null
    sql "select pg_reload_conf()" >/dev/null
    # The archiver takes the new value at its next loop: wait until the server reports it.
    for _ in $(seq 100); do
        [ "$(sql "show archive_command")" = "$1" ] && return 0
        sleep 0.1
    done
    die "archive_command did not change"
}
ready_count() { find "$DB/pg/pg_wal/archive_status" -name '*.ready' | wc -l; }
wait_drained() { # SECONDS: until no .ready file is left
    local until=$(($(date +%s) + $1))
    while [ "$(ready_count)" -gt 0 ]; do
        [ "$(date +%s)" -lt "$until" ] || return 1
        sleep 0.1
    done
}
now() { date +%s.%N; }

say "cluster: initdb, pgbench -i -s $SCALE"
mkdir -p "$DB/pg" "$DB/run"
chown -R postgres: "$DB"
as_pg "$PGBIN/initdb" -D "$DB/pg" -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=trust \
    --auth-host=reject >"$DB/initdb.log"
cat >>"$DB/pg/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DB/run'
shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
wal_level = replica
archive_mode = on
archive_timeout = 0
synchronous_commit = off
EOF
CLUSTER=$DB/pg
as_pg "$PGBIN/pg_ctl" -D "$DB/pg" -l "$DB/pg.log" -w -t 120 start >/dev/null
as_pg "$PGBIN/pgbench" -h "$DB/run" -p "$PORT" -i -q -s "$SCALE" postgres >"$W/pgbench-init.log" 2>&1 ||
    { cat "$W/pgbench-init.log"; die "pgbench -i failed"; }
as_pg "$W/pf" init >/dev/null
set_archive "$(archive_cmd both 0)"
as_pg "$W/pgbackrest" stanza-create >/dev/null
as_pg "$W/pgbackrest" check >/dev/null
wait_drained 600 || die "the initial WAL did not drain"

aid=1
rows=$((SCALE * 100000))
for run in $(seq "$RUNS"); do
    # Each run starts the rotation one tool further on.
    read -ra T <<<"$TOOLS"
    k=$(((run - 1) % ${#T[@]}))
    for tool in "${T[@]:k}" "${T[@]:0:k}"; do
        set_archive ""
        # The same amount of WAL for every tool: row updates (heap, index and full-page
        # images, as a busy server writes) until BACKLOG segments are written.
        l0=$(sql "select pg_current_wal_lsn()")
        while [ "$(sql "select pg_wal_lsn_diff(pg_current_wal_lsn(), '$l0') < $BACKLOG * 16777216")" = t ]; do
            sql "update pgbench_accounts set abalance = abalance + 1 where aid between $aid and $((aid + 49999))" >/dev/null
            aid=$(((aid + 50000) % rows))
        done
        sql "select pg_switch_wal()" >/dev/null
        n=$(ready_count)
        a0=$(sql "select archived_count from pg_stat_archiver")
        say "run $run: $tool, $n segments"
        t0=$(now)
        set_archive "$(archive_cmd "$tool" "$run")"
        wait_drained 1800 || die "$tool did not drain $n segments in 30 min"
        t1=$(now)
        a1=$(sql "select archived_count from pg_stat_archiver")
        python3 - "$tool" "$run" "$((a1 - a0))" "$t0" "$t1" "$W/time/$tool.$run" >>"$R" <<'EOF'
import sys
tool, run, segs, t0, t1, tf = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
calls = [l.strip().split('_') for l in open(tf) if l.count('_') == 3]
cpu = sum(float(c[1]) + float(c[2]) for c in calls)
s = t1 - t0
for m, v in [('segments', segs), ('seconds', f'{s:.2f}'), ('segments_per_s', f'{segs / s:.3f}'),
             ('calls', len(calls)), ('cpu_s', f'{cpu:.2f}'), ('cpu_per_segment_s', f'{cpu / segs:.4f}'),
             ('peak_rss_kb', max(int(c[3]) for c in calls))]:
    print(f'{tool}\t{run}\t{m}\t{v}')
EOF
    done
done
set_archive ""
# permafrost's repository holds only the drains it served: check may name those gaps and
# nothing else.
as_pg "$W/pf" check >"$W/check.log" 2>&1 || true
if grep '^error:' "$W/check.log" | grep -qv '^error: WAL gap on timeline'; then
    cat "$W/check.log"
    die "permafrost check found damage"
fi

say "done"
cat "$R"
python3 - "$R" "$TOOLS" <<'EOF'
import statistics, sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1]) if l.strip()]
tools = sys.argv[2].split()
def vals(tool, m):
    return [float(r[3]) for r in rows if r[0] == tool and r[2] == m]
def med(tool, m):
    v = vals(tool, m)
    return statistics.median(v) if v else None
print('\n| median of %d drains | ' % len(vals(tools[0], 'segments_per_s')) + ' | '.join(tools) + ' |')
print('|---|' + '---|' * len(tools))
for m, label, div in [('segments_per_s', 'segments/s', 1), ('cpu_per_segment_s', 'CPU s per segment (user+sys of the calls)', 1),
                      ('peak_rss_kb', 'peak RSS of a call, MiB', 1024)]:
    print(f'| {label} | ' + ' | '.join('-' if med(t, m) is None else f'{med(t, m) / div:.3f}' for t in tools) + ' |')
base = [t for t in tools if t.startswith('pgbackrest')]
for b in base:
    for t in [t for t in tools if t.startswith('permafrost')]:
        a, c = med(t, 'segments_per_s'), med(b, 'segments_per_s')
        if a and c:
            print(f'\n{t} / {b} segments/s: {a / c:.2f}', end='')
print()
for t in tools:
    print(f'{t}: segments/s per run ' + ', '.join(f'{x:.2f}' for x in vals(t, 'segments_per_s')))
EOF

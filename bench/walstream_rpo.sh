#!/usr/bin/env bash
# RPO of `permafrost wal-stream` (issue 12: "nothing older than 5 s lost with wal-stream")
# and its memory against pg_receivewal, on a small cluster, in minutes.
#
#   bench/walstream_rpo.sh WORKDIR
#
# Each run: a fresh PostgreSQL 15 cluster (fsync on, wal_level = replica, no
# archive_timeout), a fresh permafrost repository, `permafrost wal-stream` (slot permafrost)
# and `pg_receivewal` (slot receivewal, into a directory) both streaming from it, and when
# pgBackRest is installed `archive_command = pgbackrest archive-push %p` (pgBackRest has no
# streaming receiver: its archive-push is the nearest thing, measured for memory only). A
# physical base backup by permafrost, then `pgbench -R RATE -c 2` inserting rows with each
# acknowledged transaction logged (`pgbench -l`); after BENCH_RPO_SECONDS every process of
# the cluster AND the receivers are stopped (SIGSTOP, all at once: the machine is lost)
# then killed with SIGKILL; restore to latest from the permafrost repository onto another
# cluster; missing = acknowledged transactions whose rows are not there (each client's rows
# are a prefix of its log), and the age of the oldest missing one at the kill. Peak RSS
# (VmHWM) of wal-stream and pg_receivewal is read just before the kill; archive-push's per
# call under /usr/bin/time.
#
# Environment: PERMAFROST (binary, default ./permafrost), BENCH_RUNS (3),
# BENCH_RPO_SECONDS (60), BENCH_RPO_RATE (20), BENCH_RESTARTED=1 (measure a restart of
# wal-stream, its first start having cached the key), BENCH_KEEP=1 keeps WORKDIR. Needs root (the
# clusters run as postgres) and /usr/bin/time when pgBackRest is measured.
set -euo pipefail

[ $# = 1 ] || {
    echo "usage: bench/walstream_rpo.sh WORKDIR" >&2
    exit 2
}
PF=${PERMAFROST:-./permafrost}
case "$PF" in /*) ;; *) PF=$PWD/$PF ;; esac
W=$1
case "$W" in /*) ;; *) W=$PWD/$W ;; esac
RUNS=${BENCH_RUNS:-3}
RPO_S=${BENCH_RPO_SECONDS:-60}
RATE=${BENCH_RPO_RATE:-20}
PGBIN=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || true)
PGBR=$(command -v pgbackrest || true)
[ -x /usr/bin/time ] || PGBR=

die() {
    echo "bench: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || die "run as root (the clusters run as the postgres OS user)"
[ -x "$PF" ] || die "$PF is not executable: run make, or set PERMAFROST"
[ -n "$PGBIN" ] || die "PostgreSQL 15 is not installed (/usr/lib/postgresql/15/bin)"
say() { echo "== $(date -u +%H:%M:%S) $*" >&2; }
as_pg() { runuser -u postgres -- "$@"; }
# Runs as postgres with exec all the way down: $! is the process itself.
bg_pg() { exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
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
now() { date +%s.%N; }
pg_opts() { echo "-p $2 -c listen_addresses=127.0.0.1 -c unix_socket_directories=$1"; }
wait_until() { # SECONDS CMD...
    local until=$(($(date +%s) + $1))
    until "${@:2}"; do
        [ "$(date +%s)" -lt "$until" ] || return 1
        sleep 0.2
    done
}

rm -rf "$W"
mkdir -p "$W"
chmod 711 "$W"
chmod o+x "$(dirname "$W")" 2>/dev/null || true
R=$W/results.tsv
: >"$R"
result() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$R"; } # TOOL RUN METRIC VALUE
cp "$PF" "$W/permafrost"
printf 'bench-passphrase\n' >"$W/pass"
: >"$W/empty.conf"
cat >"$W/pf" <<EOF
#!/bin/sh
export PERMAFROST_PASSWORD_FILE=$W/pass PERMAFROST_REPO=$W/repo PERMAFROST_KEY_CACHE=$W/kc
export PERMAFROST_CONFIG=$W/empty.conf PERMAFROST_LOCK_WAIT=60
unset PERMAFROST_PASSWORD
exec $W/permafrost "\$@"
EOF
chmod 755 "$W/pf" "$W/permafrost"
chmod 600 "$W/pass"
chmod 644 "$W/empty.conf"
chown postgres: "$W/pass"
pf() { as_pg "$W/pf" "$@"; }

DB=$W/db
RS=$W/restored
PIDS=()
cleanup() {
    local p d
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for d in "$DB/pg" "$RS/pg"; do
        [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
    done
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
sql() { as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DB/run" -p "$PORT" -d postgres -Atc "$1"; }
descendants() { # PID: it and every descendant
    local c
    echo "$1"
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do descendants "$c"; done
}
hwm_kb() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }

for run in $(seq "$RUNS"); do
    say "run $run: a fresh cluster and repository"
    for d in "$DB/pg" "$RS/pg"; do
        [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
    done
    rm -rf "$DB" "$RS" "$W/repo" "$W/kc" "$W/receivewal" "$W/pgbr" "$W/rpolog"
    mkdir -p "$DB/pg" "$DB/run" "$W/repo" "$W/kc" "$W/receivewal" "$W/rpolog" \
        "$W/pgbr/repo" "$W/pgbr/log" "$W/pgbr/lock" "$W/pgbr/spool"
    chmod 700 "$W/kc" "$DB/pg"
    chown -R postgres: "$DB" "$W/repo" "$W/kc" "$W/receivewal" "$W/rpolog" "$W/pgbr"
    PORT=$(free_port)
    as_pg "$PGBIN/initdb" -D "$DB/pg" -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=trust \
        --auth-host=reject >"$W/initdb.log"
    cat >>"$DB/pg/postgresql.conf" <<EOF
wal_level = replica
max_wal_senders = 6
max_replication_slots = 6
synchronous_commit = on
EOF
    if [ -n "$PGBR" ]; then
        cat >"$W/pgbr/pgbackrest.conf" <<EOF
[global]
repo1-path=$W/pgbr/repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=bench-passphrase
compress-type=zst
compress-level=3
log-path=$W/pgbr/log
lock-path=$W/pgbr/lock
spool-path=$W/pgbr/spool
log-level-console=warn

[bench]
pg1-path=$DB/pg
pg1-socket-path=$DB/run
pg1-port=$PORT
EOF
        chown postgres: "$W/pgbr/pgbackrest.conf"
        printf "archive_mode = on\narchive_command = '/usr/bin/time -f %%%%M -a -o %s %s --config=%s --stanza=bench archive-push %%p'\n" \
            "$W/pgbr/rss" "$PGBR" "$W/pgbr/pgbackrest.conf" >>"$DB/pg/postgresql.conf"
    fi
    as_pg "$PGBIN/pg_ctl" -D "$DB/pg" -l "$DB/pg.log" -w -t 120 -o "$(pg_opts "$DB/run" "$PORT")" start >/dev/null
    [ -z "$PGBR" ] || as_pg "$PGBR" --config="$W/pgbr/pgbackrest.conf" --stanza=bench stanza-create >/dev/null
    sql "create table rpo (client int not null, at timestamptz not null default clock_timestamp())"
    printf 'insert into rpo (client) values (:client_id);\n' >"$W/rpo.sql"
    chmod 644 "$W/rpo.sql"
    pf init >/dev/null

    if [ -n "${BENCH_RESTARTED:-}" ]; then
        # A service that ran before: its first start cached the repository's key (scrypt's
        # 32 MiB, once); the measured process is the restart.
        bg_pg "$W/pf" -v wal-stream --pg-conninfo "host=$DB/run port=$PORT user=postgres" >"$W/stream0.log" 2>&1 &
        ws=$!
        wait_until 60 grep -q "streaming timeline" "$W/stream0.log" || { cat "$W/stream0.log"; die "wal-stream did not start"; }
        kill -TERM "$ws"
        wait "$ws" || die "wal-stream did not stop cleanly: $(tail -3 "$W/stream0.log")"
    fi
    bg_pg "$W/pf" -v wal-stream --pg-conninfo "host=$DB/run port=$PORT user=postgres" >"$W/stream.log" 2>&1 &
    ws=$!
    PIDS+=("$ws")
    wait_until 60 grep -q "streaming timeline" "$W/stream.log" || { cat "$W/stream.log"; die "wal-stream did not start"; }
    as_pg "$PGBIN/pg_receivewal" -h "$DB/run" -p "$PORT" -U postgres --slot receivewal --create-slot >/dev/null
    bg_pg "$PGBIN/pg_receivewal" -h "$DB/run" -p "$PORT" -U postgres --slot receivewal \
        -D "$W/receivewal" -n >"$W/receivewal.log" 2>&1 &
    rw=$!
    PIDS+=("$rw")
    pf backup --pg-physical --pg-conninfo "host=$DB/run port=$PORT user=postgres" >"$W/backup.out" 2>&1 ||
        { cat "$W/backup.out"; die "permafrost backup failed"; }

    say "run $run: pgbench -R $RATE -c 2 for $RPO_S s, then the machine is lost"
    (cd "$W/rpolog" && exec runuser -u postgres -- "$PGBIN/pgbench" -h "$DB/run" -p "$PORT" -n \
        -c 2 -j 2 -R "$RATE" -T $((RPO_S + 60)) -l -f "$W/rpo.sql" postgres >"$W/rpo.out" 2>&1) &
    load=$!
    sleep "$RPO_S" # the load's duration, not a synchronisation
    result wal-stream "$run" peak_rss_kb "$(hwm_kb "$ws")"
    result pg_receivewal "$run" peak_rss_kb "$(hwm_kb "$rw")"
    victims=$(descendants "$(head -1 "$DB/pg/postmaster.pid")")
    kill -STOP $victims "$ws" "$rw" 2>/dev/null || true
    kill_at=$(now)
    kill -KILL $victims "$ws" "$rw" 2>/dev/null || true
    wait "$ws" "$rw" "$load" 2>/dev/null || true
    rm -f "$DB/pg/postmaster.pid"
    if [ -n "$PGBR" ] && [ -s "$W/pgbr/rss" ]; then
        result archive-push "$run" peak_rss_kb "$(grep -E '^[0-9]+$' "$W/pgbr/rss" | sort -n | tail -1)"
    fi

    say "run $run: restore to latest onto another cluster"
    mkdir -p "$RS/pg" "$RS/run"
    chmod 700 "$RS/pg"
    chown -R postgres: "$RS"
    t0=$(now)
    RPORT=$(free_port)
    pf restore latest --pg-physical-target "$RS/pg" --pg-start \
        --pg-ctl-options "$(pg_opts "$RS/run" "$RPORT") -c archive_mode=off" >"$W/restore.out" 2>&1 ||
        { cat "$W/restore.out"; die "restore failed"; }
    result wal-stream "$run" restore_s "$(python3 -c "print(round($(now) - $t0, 1))")"
    as_pg "$PGBIN/psql" -X -q -h "$RS/run" -p "$RPORT" -d postgres -Atc \
        "select client, count(*) from rpo group by client" >"$W/rpo.restored" ||
        { cat "$W/restore.out"; die "cannot query the restored cluster"; }
    as_pg "$PGBIN/pg_ctl" -D "$RS/pg" -m immediate -w stop >/dev/null 2>&1 || true
    python3 - "$W/rpolog" "$W/rpo.restored" "$kill_at" "$run" "$R" <<'EOF'
import glob, sys
logdir, restored, kill_at, run, out = sys.argv[1:]
kill_at = float(kill_at)
have = {}
for line in open(restored):
    if line.strip():
        c, n = line.strip().split('|')
        have[int(c)] = int(n)
acked = {}
for f in glob.glob(logdir + '/pgbench_log.*'):
    for line in open(f):
        p = line.split()
        c, epoch, us = int(p[0]), int(p[4]), int(p[5])
        acked.setdefault(c, []).append(epoch + us / 1e6)
total = missing = 0
oldest = None
for c, ts in acked.items():
    ts.sort()
    total += len(ts)
    lost = ts[have.get(c, 0):]
    missing += len(lost)
    if lost:
        age = kill_at - lost[0]
        oldest = age if oldest is None else max(oldest, age)
with open(out, 'a') as o:
    o.write(f"wal-stream\t{run}\tacked\t{total}\n")
    o.write(f"wal-stream\t{run}\tmissing\t{missing}\n")
    o.write(f"wal-stream\t{run}\toldest_missing_age_s\t{0 if oldest is None else round(oldest, 2)}\n")
EOF
    grep -P "^[^\t]+\t$run\t" "$R" >&2
done

cat "$R"
python3 - "$R" <<'EOF'
import statistics, sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1]) if l.strip()]
by = {}
for tool, run, metric, v in rows:
    by.setdefault((tool, metric), []).append(float(v))
print('\n| metric | median | runs |\n|---|---:|---|')
for (tool, metric), vs in sorted(by.items()):
    print(f"| {tool} {metric} | {statistics.median(vs):g} | {', '.join(f'{v:g}' for v in vs)} |")
EOF

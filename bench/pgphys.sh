#!/usr/bin/env bash
# Physical backups and WAL archiving: permafrost against pgBackRest on the same cluster, in
# one run (issue 12, "Must measure").
#
#   bench/pgphys.sh WORKDIR
#
# Starts its own PostgreSQL 15 cluster (socket and a loopback port under WORKDIR, run as the
# postgres OS user, fsync and full_page_writes on as in production), fills it with
# `pgbench -i -s SCALE` plus Mastodon-shaped tables (statuses, accounts with their indexes)
# and measures, each tool in turn and alternating which goes first:
#   base      full base backup (permafrost into a fresh repository each run, pgBackRest
#             --type=full), then restore of it onto another cluster: data directory
#             written + recovery to consistency + promotion (recovery.signal gone); then,
#             after BENCH_LOAD_SECONDS of pgbench, a second base backup (permafrost's dedup
#             against the first, pgBackRest --type=incr); repository sizes; peak RSS.
#             Also pg_dump -Fc and pg_restore -j2 of the same database, once.
#   drain     archiving capacity: archiving paused (archive_command = ''), row updates make a
#             backlog of BENCH_BACKLOG_SEGMENTS segments, then the tool's archive_command is set and the time until
#             no .ready file is left gives segments/s (permafrost wal-push, pgbackrest
#             archive-push, and archive-push with archive-async)
#   load      pgbench at full speed for BENCH_LOAD_SECONDS with each archive_command: the
#             .ready count sampled every 5 s says whether the archive lag grows
#   rpo       archive_timeout = 60, pgbench -R at a steady rate, kill -9 of every process of
#             the cluster (the machine is lost) after BENCH_RPO_SECONDS, restore to latest on
#             another cluster: acknowledged transactions missing (from pgbench -l logs) and
#             the age of the oldest missing one
# Prints the raw lines (WORKDIR/results.tsv) and Markdown tables of medians and ratios.
#
# Settings chosen for comparability: permafrost uses its defaults (zstd level 3, AES
# encryption, 2 workers on this 2-core machine: nproc clamped to 2..8). pgBackRest gets the
# same: compress-type=zst, compress-level=3, repo1-cipher-type=aes-256-cbc, process-max=2.
#
# Environment: PERMAFROST (binary, default ./permafrost), BENCH_SCALE (pgbench scale,
# default 200, ~3 GB), BENCH_RUNS (3), BENCH_PARTS ("base drain load rpo"),
# BENCH_LOAD_SECONDS (60), BENCH_BACKLOG_SEGMENTS (40),
# BENCH_BASE_ONLY=1 (the base part without its second backups and pg_dump/pg_restore),
# BENCH_RPO_SECONDS (150), BENCH_RPO_RATE (pgbench -R, 20), BENCH_RPO_TOOLS ("permafrost
# pgbackrest"), BENCH_KEEP=1 keeps WORKDIR (default: removed at the end). Needs root (the
# cluster runs as postgres), pgbackrest (apt-get install -y pgbackrest) and /usr/bin/time.
set -euo pipefail

[ $# = 1 ] || {
    echo "usage: bench/pgphys.sh WORKDIR" >&2
    exit 2
}
here=$(cd "$(dirname "$0")" && pwd)
PF=${PERMAFROST:-./permafrost}
case "$PF" in /*) ;; *) PF=$PWD/$PF ;; esac
W=$1
case "$W" in /*) ;; *) W=$PWD/$W ;; esac
SCALE=${BENCH_SCALE:-200}
RUNS=${BENCH_RUNS:-3}
PARTS=${BENCH_PARTS:-base drain load rpo}
LOAD_S=${BENCH_LOAD_SECONDS:-60}
BACKLOG=${BENCH_BACKLOG_SEGMENTS:-40}
RPO_S=${BENCH_RPO_SECONDS:-150}
RPO_RATE=${BENCH_RPO_RATE:-20}
RPO_TOOLS=${BENCH_RPO_TOOLS:-permafrost pgbackrest}
PGBIN=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || true)

die() {
    echo "bench: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || die "run as root (the clusters run as the postgres OS user)"
[ -x "$PF" ] || die "$PF is not executable: run make, or set PERMAFROST"
[ -n "$PGBIN" ] || die "PostgreSQL 15 is not installed (/usr/lib/postgresql/15/bin)"
command -v pgbackrest >/dev/null || die "pgbackrest is missing: apt-get install -y pgbackrest"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package: time)"
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
say() { echo "== $(date -u +%H:%M:%S) $*" >&2; }

rm -rf "$W"
mkdir -p "$W"
chmod 711 "$W"
chmod o+x "$(dirname "$W")" 2>/dev/null || true
R=$W/results.tsv
: >"$R"
chmod 666 "$R"
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
# result PHASE TOOL RUN METRIC VALUE
result() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$R"; }

# --- the tools, each behind a wrapper the postgres user runs --------------------------
cp "$PF" "$W/permafrost"
printf 'bench-passphrase\n' >"$W/pass"
: >"$W/empty.conf"
mkdir -p "$W/kc" "$W/repo" "$W/pgbr-repo" "$W/pgbr-spool" "$W/pgbr-log" "$W/pgbr-lock" "$W/rss"
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
start-fast=y
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
    "$W/pgbr-lock" "$W/rss"
chmod 700 "$W/kc"
pf() { as_pg "$W/pf" "$@"; }
pgbr() { as_pg "$W/pgbackrest" "$@"; }

# The archive_command of each tool, run under /usr/bin/time for its peak RSS (%% is a
# literal % for PostgreSQL). archive-push with archive-async spools and pushes in a
# background process of its own: its RSS is the foreground part only.
archive_cmd() { # TOOL
    local t="/usr/bin/time -f %%M -a -o $W/rss/$1"
    case $1 in
    permafrost) echo "$t $W/pf wal-push %p" ;;
    pgbackrest) echo "$t $W/pgbackrest archive-push %p" ;;
    pgbackrest-async) echo "$t $W/pgbackrest --archive-async archive-push %p" ;;
    both) echo "$W/pf wal-push %p && $W/pgbackrest archive-push %p" ;;
    esac
}

# --- clusters -------------------------------------------------------------------------
pg_opts() { # RUNDIR PORT
    echo "-p $2 -c listen_addresses=127.0.0.1 -c unix_socket_directories=$1"
}
kill_tree() { # PID: the process and every descendant, children first stopped by SIGKILL
    local p=$1 c
    kill -STOP "$p" 2>/dev/null || true
    for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do kill_tree "$c"; done
    kill -KILL "$p" 2>/dev/null || true
}
CLUSTERS=()
cleanup() {
    local d
    for d in "${CLUSTERS[@]}"; do
        [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
    done
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
        sleep 0.2
    done
}
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

say "cluster: initdb, pgbench -i -s $SCALE and Mastodon-shaped tables"
mkdir -p "$DB/pg" "$DB/run"
chown -R postgres: "$DB"
as_pg "$PGBIN/initdb" -D "$DB/pg" -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=trust \
    --auth-host=reject >"$DB/initdb.log"
cat >>"$DB/pg/postgresql.conf" <<EOF
shared_buffers = 512MB
max_wal_size = 4GB
checkpoint_timeout = 15min
max_wal_senders = 4
archive_timeout = 60
EOF
CLUSTERS+=("$DB/pg")
# The load without WAL (wal_level = minimal): the data is the same, generated faster.
as_pg "$PGBIN/pg_ctl" -D "$DB/pg" -l "$DB/pg.log" -w -t 120 \
    -o "$(pg_opts "$DB/run" "$PORT") -c wal_level=minimal -c max_wal_senders=0 -c archive_mode=off" start >/dev/null
as_pg "$PGBIN/pgbench" -h "$DB/run" -p "$PORT" -i -q -s "$SCALE" postgres >"$W/pgbench-init.log" 2>&1 ||
    { cat "$W/pgbench-init.log"; die "pgbench -i failed"; }
sql "
create table accounts (id bigint primary key, username text not null, domain text,
  display_name text, note text, created_at timestamptz not null, updated_at timestamptz not null);
insert into accounts select i, 'user' || i, case when i % 3 = 0 then null else 'host' || (i % 997) || '.example' end,
  'User ' || i, repeat(md5(i::text), 4), now() - i * interval '1 minute', now()
  from generate_series(1::bigint, $((SCALE * 1000))) i;
create unique index on accounts (lower(username), coalesce(lower(domain), ''));
create table statuses (id bigint primary key, account_id bigint not null references accounts,
  uri text, text text not null, in_reply_to_id bigint, reblog_of_id bigint, visibility int not null,
  created_at timestamptz not null, updated_at timestamptz not null);
insert into statuses select i, 1 + (i * 7919) % $((SCALE * 1000)), 'https://host.example/statuses/' || i,
  repeat(md5(i::text) || ' ', (1 + i % 8)::int), case when i % 5 = 0 then i - 1 end, null, i % 4,
  now() - i * interval '1 second', now() from generate_series(1::bigint, $((SCALE * 10000))) i;
create index on statuses (account_id, id desc);
create index on statuses (in_reply_to_id) where in_reply_to_id is not null;
create index on statuses (created_at);" >/dev/null
sql "vacuum analyze" >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$DB/pg" -m fast -w stop >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$DB/pg" -l "$DB/pg.log" -w -t 120 \
    -o "$(pg_opts "$DB/run" "$PORT") -c wal_level=replica -c archive_mode=on" start >/dev/null
DBSIZE=$(sql "select sum(pg_database_size(oid)) from pg_database")
say "database: $((DBSIZE / 1048576)) MiB"
result setup - - db_bytes "$DBSIZE"
pf init >/dev/null
set_archive "$(archive_cmd both)"
pgbr stanza-create >/dev/null
pgbr check >/dev/null

RS=$W/restored
RPORT=$(free_port)
# restore_to TOOL RUN: onto another cluster, until it has promoted; records seconds and RSS.
restore_one() {
    local tool=$1 run=$2 t0 t1
    rm -rf "$RS"
    mkdir -p "$RS/pg" "$RS/run"
    chmod 700 "$RS/pg"
    chown -R postgres: "$RS"
    CLUSTERS+=("$RS/pg")
    local opts
    opts="$(pg_opts "$RS/run" "$RPORT") -c archive_mode=off"
    t0=$(now)
    if [ "$tool" = permafrost ]; then
        as_pg /usr/bin/time -f '%M %U %S' -o "$W/rss/restore" "$W/pf" restore latest \
            --pg-physical-target "$RS/pg" --pg-start --pg-ctl-options "$opts" >"$W/restore.out" 2>&1 ||
            { cat "$W/restore.out"; die "permafrost restore failed"; }
    else
        as_pg /usr/bin/time -f '%M %U %S' -o "$W/rss/restore" "$W/pgbackrest" restore --pg1-path="$RS/pg" \
            >"$W/restore.out" 2>&1 || { cat "$W/restore.out"; die "pgbackrest restore failed"; }
        as_pg "$PGBIN/pg_ctl" -D "$RS/pg" -l "$RS/pg.log" -w -t 600 -o "$opts" start >/dev/null ||
            { cat "$RS/pg.log"; die "the cluster pgbackrest restored does not start"; }
        while [ -e "$RS/pg/recovery.signal" ]; do
            [ -f "$RS/pg/postmaster.pid" ] || { cat "$RS/pg.log"; die "recovery failed"; }
            sleep 0.1
        done
    fi
    t1=$(now)
    result base "$tool" "$run" restore_s "$(elapsed "$t0" "$t1")"
    read -r rss u sy <"$W/rss/restore"
    result base "$tool" "$run" restore_rss_kb "$rss"
    result base "$tool" "$run" restore_cpu_s "$(python3 -c "print(round($u + $sy, 2))")"
}
stop_restored() {
    as_pg "$PGBIN/pg_ctl" -D "$RS/pg" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$RS"
}
backup_one() { # TOOL RUN KIND(full|second)
    local tool=$1 run=$2 kind=$3 t0 t1 out=$W/backup.out repo=$W/repo s0
    [ "$tool" = permafrost ] || repo=$W/pgbr-repo
    s0=$(du -sb "$repo" | cut -f1)
    t0=$(now)
    if [ "$tool" = permafrost ]; then
        as_pg /usr/bin/time -f '%M %U %S' -o "$W/rss/backup" "$W/pf" --json backup --pg-physical \
            --pg-conninfo "host=$DB/run port=$PORT user=postgres" >"$out" 2>"$out.err" ||
            { cat "$out.err"; die "permafrost backup failed"; }
    else
        as_pg /usr/bin/time -f '%M %U %S' -o "$W/rss/backup" "$W/pgbackrest" backup \
            --type="$([ "$kind" = full ] && echo full || echo incr)" >"$out" 2>"$out.err" ||
            { cat "$out.err"; die "pgbackrest backup failed"; }
    fi
    t1=$(now)
    result base "$tool" "$run" "${kind}_backup_s" "$(elapsed "$t0" "$t1")"
    read -r rss u sy <"$W/rss/backup"
    result base "$tool" "$run" "${kind}_backup_rss_kb" "$rss"
    result base "$tool" "$run" "${kind}_backup_cpu_s" "$(python3 -c "print(round($u + $sy, 2))")"
    # What the repository grew by: the backup, and the WAL archived while it ran (both
    # tools archive the same segments during the base part).
    result base "$tool" "$run" "${kind}_backup_added_bytes" "$(($(du -sb "$repo" | cut -f1) - s0))"
}
fresh_pf_repo() {
    rm -rf "$W/repo" "$W/kc"/*
    mkdir "$W/repo"
    chown postgres: "$W/repo"
    pf init >/dev/null
}

if has base; then
    for run in $(seq "$RUNS"); do
        if [ $((run % 2)) = 1 ]; then order="permafrost pgbackrest"; else order="pgbackrest permafrost"; fi
        for tool in $order; do
            say "base run $run: $tool backup"
            [ "$tool" = permafrost ] && fresh_pf_repo
            backup_one "$tool" "$run" full
        done
        for tool in $order; do
            say "base run $run: $tool restore"
            restore_one "$tool" "$run"
            stop_restored
        done
    done
fi
if has base && [ "${BENCH_BASE_ONLY:-0}" = 0 ]; then
    say "second base backups after ${LOAD_S} s of pgbench"
    as_pg "$PGBIN/pgbench" -h "$DB/run" -p "$PORT" -n -c 4 -j 2 -T "$LOAD_S" postgres >"$W/pgbench-load.log" 2>&1
    for tool in permafrost pgbackrest; do backup_one "$tool" 1 second; done

    say "pg_dump -Fc and pg_restore -j 2"
    t0=$(now)
    as_pg "$PGBIN/pg_dump" -h "$DB/run" -p "$PORT" -Fc -f "$W/rss/dump" postgres
    t1=$(now)
    result base pg_dump 1 dump_s "$(elapsed "$t0" "$t1")"
    result base pg_dump 1 dump_bytes "$(stat -c %s "$W/rss/dump")"
    sql "create database restored" >/dev/null
    t0=$(now)
    as_pg "$PGBIN/pg_restore" -h "$DB/run" -p "$PORT" -j 2 -d restored "$W/rss/dump"
    t1=$(now)
    result base pg_restore 1 restore_s "$(elapsed "$t0" "$t1")"
    sql "drop database restored" >/dev/null
    rm -f "$W/rss/dump"
fi

# pgbench at full speed for the archiving parts: commits need not wait for the disk.
sql "alter system set synchronous_commit = off" >/dev/null
sql "select pg_reload_conf()" >/dev/null

if has drain; then
    aid=1
    for run in $(seq "$RUNS"); do
        case $((run % 3)) in
        1) order="permafrost pgbackrest pgbackrest-async" ;;
        2) order="pgbackrest pgbackrest-async permafrost" ;;
        0) order="pgbackrest-async permafrost pgbackrest" ;;
        esac
        for tool in $order; do
            set_archive ""
            # The same amount of WAL for every tool: row updates (heap, index and full-page
            # images, as a busy server writes) until BACKLOG segments are written.
            l0=$(sql "select pg_current_wal_lsn()")
            while [ "$(sql "select pg_wal_lsn_diff(pg_current_wal_lsn(), '$l0') < $BACKLOG * 16777216")" = t ]; do
                sql "update pgbench_accounts set abalance = abalance + 1 where aid between $aid and $((aid + 49999))" >/dev/null
                aid=$(((aid + 50000) % (SCALE * 100000)))
            done
            sql "select pg_switch_wal()" >/dev/null
            sleep 1
            n=$(ready_count)
            a0=$(sql "select archived_count from pg_stat_archiver")
            say "drain run $run: $tool, $n segments"
            t0=$(now)
            set_archive "$(archive_cmd "$tool")"
            wait_drained 1800 || die "$tool did not drain $n segments in 30 min"
            t1=$(now)
            a1=$(sql "select archived_count from pg_stat_archiver")
            s=$(elapsed "$t0" "$t1")
            result drain "$tool" "$run" segments "$((a1 - a0))"
            result drain "$tool" "$run" seconds "$s"
            result drain "$tool" "$run" segments_per_s "$(python3 -c "print(f'{$((a1 - a0)) / $s:.2f}')")"
        done
    done
    for tool in permafrost pgbackrest pgbackrest-async; do
        result drain "$tool" - push_rss_kb "$(sort -n "$W/rss/$tool" | tail -1)"
    done
fi

if has load; then
    for tool in permafrost pgbackrest pgbackrest-async; do
        set_archive "$(archive_cmd "$tool")"
        wait_drained 600 || die "backlog before the load run did not drain"
        say "load: pgbench ${LOAD_S} s with $tool"
        l0=$(sql "select pg_current_wal_lsn()")
        a0=$(sql "select archived_count from pg_stat_archiver")
        as_pg "$PGBIN/pgbench" -h "$DB/run" -p "$PORT" -n -c 4 -j 2 -T "$LOAD_S" postgres >"$W/load.log" 2>&1 &
        bg=$!
        samples=""
        for _ in $(seq $((LOAD_S / 5))); do
            sleep 5
            samples="$samples $(ready_count)"
        done
        wait "$bg"
        l1=$(sql "select pg_current_wal_lsn()")
        a1=$(sql "select archived_count from pg_stat_archiver")
        t0=$(now)
        wait_drained 1800 || die "$tool did not catch up after the load"
        t1=$(now)
        result load "$tool" 1 wal_segments_made "$(sql "select (pg_wal_lsn_diff('$l1', '$l0') / 16777216)::int")"
        result load "$tool" 1 archived_during "$((a1 - a0))"
        result load "$tool" 1 ready_samples "${samples# }"
        result load "$tool" 1 catch_up_s "$(elapsed "$t0" "$t1")"
        result load "$tool" 1 tps "$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$W/load.log" | head -1)"
    done
fi

if has rpo; then
    sql "alter system set synchronous_commit = on" >/dev/null
    sql "create table if not exists rpo (client int not null, at timestamptz not null default clock_timestamp())" >/dev/null
    printf 'insert into rpo (client) values (:client_id);\n' >"$W/rpo.sql"
    chmod 644 "$W/rpo.sql"
    for tool in $RPO_TOOLS; do
        [ "$tool" = permafrost ] && fresh_pf_repo
        set_archive "$(archive_cmd "$tool")"
        wait_drained 600 || die "backlog before the RPO run did not drain"
        sql "truncate rpo" >/dev/null
        backup_one "$tool" rpo full
        # The backup's WAL position and the rows it holds: only what follows counts.
        mkdir -p "$W/rpolog"
        rm -f "$W/rpolog"/*
        chown postgres: "$W/rpolog"
        say "rpo: $tool, pgbench -R $RPO_RATE for ${RPO_S} s, then kill -9"
        (cd "$W/rpolog" && exec runuser -u postgres -- "$PGBIN/pgbench" -h "$DB/run" -p "$PORT" -n \
            -c 2 -j 2 -R "$RPO_RATE" -T $((RPO_S + 60)) -l -f "$W/rpo.sql" postgres >"$W/rpo.out" 2>&1) &
        bg=$!
        sleep "$RPO_S"
        kill_at=$(now)
        kill_tree "$(head -1 "$DB/pg/postmaster.pid")"
        wait "$bg" || true
        rm -f "$DB/pg/postmaster.pid"
        restore_one "$tool" rpo
        as_pg "$PGBIN/psql" -X -q -h "$RS/run" -p "$RPORT" -d postgres -Atc \
            "select client, count(*) from rpo group by client" >"$W/rpo.restored"
        stop_restored
        python3 - "$W/rpolog" "$W/rpo.restored" "$kill_at" "$tool" "$R" <<'EOF'
import glob, sys
logdir, restored, kill_at, tool, out = sys.argv[1:]
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
        c, seq, epoch, us = int(p[0]), int(p[1]), int(p[4]), int(p[5])
        acked.setdefault(c, []).append((seq, epoch + us / 1e6))
missing, oldest = 0, None
total = 0
for c, txs in acked.items():
    txs.sort()
    total += len(txs)
    got = have.get(c, 0)
    lost = txs[got:]
    missing += len(lost)
    if lost:
        age = kill_at - lost[0][1]
        oldest = age if oldest is None else max(oldest, age)
with open(out, 'a') as o:
    o.write(f"rpo\t{tool}\t1\tacked\t{total}\n")
    o.write(f"rpo\t{tool}\t1\tmissing\t{missing}\n")
    o.write(f"rpo\t{tool}\t1\toldest_missing_age_s\t{0 if oldest is None else round(oldest, 1)}\n")
EOF
        # The killed cluster again, for whatever follows.
        as_pg "$PGBIN/pg_ctl" -D "$DB/pg" -l "$DB/pg.log" -w -t 600 \
            -o "$(pg_opts "$DB/run" "$PORT") -c wal_level=replica -c archive_mode=on" start >/dev/null
    done
fi

say "done"
cat "$R"
python3 - "$R" <<'EOF'
import statistics, sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1]) if l.strip()]
def vals(phase, tool, metric):
    return [float(r[4]) for r in rows if r[0] == phase and r[1] == tool and r[3] == metric
            and r[2] not in ('rpo',)]
def med(phase, tool, metric):
    v = vals(phase, tool, metric)
    return statistics.median(v) if v else None
def fmt(x, unit=''):
    return '-' if x is None else (f'{x:.2f}' if isinstance(x, float) else str(x)) + unit
print('\n| base backup and restore | permafrost | pgBackRest | ratio pf/pgBackRest | runs |')
print('|---|---|---|---|---|')
for m, label in [('full_backup_s', 'full base backup, s (median)'),
                 ('restore_s', 'restore to promotion, s (median)'),
                 ('second_backup_s', 'second backup after load, s'),
                 ('full_backup_cpu_s', 'full base backup, CPU s of the tool (user+sys)'),
                 ('restore_cpu_s', 'restore, CPU s of the tool (user+sys, not the server)'),
                 ('full_backup_added_bytes', 'repository growth by a full backup, MiB'),
                 ('second_backup_added_bytes', 'repository growth by the second, MiB'),
                 ('full_backup_rss_kb', 'base backup peak RSS, MiB'),
                 ('restore_rss_kb', 'restore peak RSS, MiB')]:
    a, b = med('base', 'permafrost', m), med('base', 'pgbackrest', m)
    div = 1048576 if m.endswith('bytes') else 1024 if m.endswith('kb') else 1
    a = a / div if a is not None else None
    b = b / div if b is not None else None
    ratio = f'{a / b:.2f}' if a is not None and b else '-'
    print(f'| {label} | {fmt(a)} | {fmt(b)} | {ratio} | {len(vals("base", "permafrost", m))}+{len(vals("base", "pgbackrest", m))} |')
pr = med('base', 'pg_restore', 'restore_s')
if pr:
    print(f'| pg_restore -j 2 of a pg_dump -Fc, s | | | pf restore / pg_restore = {med("base", "permafrost", "restore_s") / pr:.2f} | 1 |')
print('\n| archiving | permafrost wal-push | archive-push | archive-push async | pf/push | pf/async |')
print('|---|---|---|---|---|---|')
for m, label in [('segments_per_s', 'backlog drain, segments/s (median)'),
                 ('push_rss_kb', 'peak RSS of one push, MiB')]:
    v = [med('drain', t, m) for t in ('permafrost', 'pgbackrest', 'pgbackrest-async')]
    if m.endswith('kb'):
        v = [x / 1024 if x is not None else None for x in v]
    r1 = f'{v[0] / v[1]:.2f}' if v[0] and v[1] else '-'
    r2 = f'{v[0] / v[2]:.2f}' if v[0] and v[2] else '-'
    print(f'| {label} | {fmt(v[0])} | {fmt(v[1])} | {fmt(v[2])} | {r1} | {r2} |')
for m in ('wal_segments_made', 'archived_during', 'ready_samples', 'catch_up_s', 'tps'):
    v = [[r[4] for r in rows if r[0] == 'load' and r[1] == t and r[3] == m] for t in
         ('permafrost', 'pgbackrest', 'pgbackrest-async')]
    if any(v):
        print(f'| load: {m} | ' + ' | '.join(x[0] if x else '-' for x in v) + ' | | |')
rp = [r for r in rows if r[0] == 'rpo' and r[3] in ('acked', 'missing', 'oldest_missing_age_s')]
if rp:
    print('\n| RPO (archive_timeout = 60, kill -9) | ' + ' | '.join(sorted({r[1] for r in rp})) + ' |')
    tools = sorted({r[1] for r in rp})
    print('|---|' + '---|' * len(tools))
    for m in ('acked', 'missing', 'oldest_missing_age_s'):
        print(f'| {m} | ' + ' | '.join(next((r[4] for r in rp if r[1] == t and r[3] == m), '-') for t in tools) + ' |')
EOF

#!/usr/bin/env bash
# Backup and restore throughput of the same data to a local repository, to S3 (s3rver),
# to SFTP (OpenSSH's sshd) and to `permafrost serve --append-only` behind the same sshd
# (ssh://, a forced command, as README's "Protecting backups" sets it up), all on
# loopback, in one run.
#
#   bench/offsite.sh [SIZE_MIB]
#
# Makes SIZE_MIB (default 1024) of random data: half in 8 large files, half in 1 MiB files.
# Then, for each target in turn (same data, same run, warm page cache):
#   backup    first backup into an empty repository
#   restore   restore of that snapshot into an empty directory (checked: same bytes)
# and prints a Markdown table of wall seconds and MiB/s, each remote as a percentage of
# local, the CPU seconds of permafrost (user+sys, /usr/bin/time) and of the server
# (s3rver's node process; sshd's sftp sessions), and peak RSS.
#
# Floors: the same servers moving the same bytes with no permafrost work at all: the
# local repository's packs PUT and GET by curl (S3, UNSIGNED-PAYLOAD, as many at once as
# permafrost's connections) and put/get by OpenSSH's sftp client (one session per
# connection, forced to libssh2's cipher and MAC: aes128-ctr, hmac-sha2-256). A remote's
# backup can not be faster than its floor; the gap between the two is permafrost's.
#
# The servers come from tests/harness (sshd.sh, s3rver.sh) and keep their data under the
# work directory, on the same disk as the local repository. They share the machine's cores
# with permafrost: on loopback, the server's CPU is part of the cost.
#
# Environment: BENCH_RUNS (default 1) repeats everything and reports medians;
# BENCH_TARGETS (default "local s3 sftp ssh"); BENCH_CONNECTIONS sets --connections for the
# remote targets (default: the driver's default, 4); BENCH_FLOOR=0 skips the floors; PERMAFROST (binary, default
# ./permafrost); BENCH_WORK (default bench/work-offsite; replaced); BENCH_KEEP=1 keeps it;
# BENCH_DROP_CACHES=1 drops the page cache before every step (root only);
# BENCH_BEFORE=BINARY also restores every snapshot with that (older) permafrost, right
# after the restore by PERMAFROST, in alternating order, and adds its columns, so a change
# to restore is compared before/after within one run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
size_mib=${1:-${BENCH_SIZE_MIB:-1024}}
work=${BENCH_WORK:-$here/work-offsite}
targets=${BENCH_TARGETS:-local s3 sftp ssh}
PF=${PERMAFROST:-./permafrost}
case "$PF" in /*) ;; *) PF=$PWD/$PF ;; esac
runs=${BENCH_RUNS:-1}
before=${BENCH_BEFORE:-}
[ -z "$before" ] || case "$before" in /*) ;; *) before=$PWD/$before ;; esac

die() {
    echo "bench: $*" >&2
    exit 1
}
[ -x "$PF" ] || die "$PF is not executable: run make, or set PERMAFROST"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package: time)"
[ "$size_mib" -ge 40 ] 2>/dev/null || die "SIZE_MIB must be a number >= 40"
[ "$runs" -ge 1 ] 2>/dev/null || die "BENCH_RUNS must be a number >= 1"
conn=()
[ -n "${BENCH_CONNECTIONS:-}" ] && conn=(--connections "$BENCH_CONNECTIONS")
nconn=${BENCH_CONNECTIONS:-4}
floors=""
if [ "${BENCH_FLOOR:-1}" = 1 ]; then
    case " $targets " in *" local "*)
        for t in s3 sftp; do case " $targets " in *" $t "*) floors="$floors $t-floor" ;; esac; done ;;
    esac
fi

. "$root/tests/harness/sshd.sh"
. "$root/tests/harness/s3rver.sh"

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
data=$work/data
[ "${BENCH_KEEP:-0}" = 1 ] || harness_on_exit "rm -rf '$work'"

export PERMAFROST_PASSWORD=bench
export PERMAFROST_CONFIG=$work/permafrost.conf
export PERMAFROST_CACHE_DIR=$work/cache
: >"$PERMAFROST_CONFIG"
unset SSH_AUTH_SOCK PERMAFROST_REPO PERMAFROST_PASSWORD_FILE

# --- the data ----------------------------------------------------------------------------
big_n=8
big_mib=$((size_mib / 2 / big_n))
small_n=$((size_mib - big_n * big_mib))
echo "bench: writing $big_n files of $big_mib MiB and $small_n files of 1 MiB to $data" >&2
mkdir -p "$data/large" "$data/small"
for i in $(seq 1 $big_n); do head -c "${big_mib}M" /dev/urandom >"$data/large/$i.bin"; done
python3 - "$data/small" "$small_n" <<'EOF'
import os, sys
top, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(top, "%03d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "%05d.bin" % i), "wb") as f:
        f.write(os.urandom(1 << 20))
EOF
sync
total=$(du -sb "$data" | cut -f1)
total_mib=$(awk -v b="$total" 'BEGIN {printf "%.0f", b / 1048576}')

# --- the servers -----------------------------------------------------------------------------
for t in $targets; do
    case $t in
    local) ;;
    # (three tries each: a free port can be taken before the server binds it)
    s3) for i in 1 2 3; do
            s3rver_start "$work/s3" "" bench >/dev/null 2>&1 && break
            s3rver_stop
            [ $i = 3 ] && die "cannot start s3rver: $(tail -3 "$work/s3/s3rver.log")"
        done ;;
    sftp | ssh)
        [ -n "${SSHD_PORT:-}" ] && continue
        for i in 1 2 3; do
            sshd_start "$work/sshd" >/dev/null 2>&1 && break
            sshd_stop
            [ $i = 3 ] && die "cannot start sshd: $(tail -3 "$work/sshd/sshd.log")"
        done
        mkdir -p "$work/home/.ssh"
        cp "$SSHD_KNOWN_HOSTS" "$work/home/.ssh/known_hosts"
        # ssh://: a second key whose forced command is the append-only server.
        ssh-keygen -q -t ed25519 -N '' -C serve -f "$work/serve_key"
        mkdir -p "$SSHD_ROOT/serve"
        echo "command=\"$PF serve --append-only --restrict-to-path $SSHD_ROOT/serve\",restrict $(cat "$work/serve_key.pub")" \
            >>"$SSHD_DIR/authorized_keys"
        export PERMAFROST_SSH="ssh -F /dev/null -o IdentitiesOnly=yes -i $work/serve_key -o UserKnownHostsFile=$SSHD_KNOWN_HOSTS -o StrictHostKeyChecking=yes"
        ;;
    *) die "unknown target $t (local, s3, sftp, ssh)" ;;
    esac
done

url() {
    case $1 in
    local) echo "$work/local-repo" ;;
    s3) echo "$S3RVER_URL/repo" ;;
    sftp) echo "$SSHD_URL/repo" ;;
    ssh) echo "ssh://$(id -un)@127.0.0.1:$SSHD_PORT$SSHD_ROOT/serve/repo" ;;
    esac
}
wipe_repo() {
    case $1 in
    local) rm -rf "$work/local-repo" ;;
    s3) rm -rf "$work/s3/s3rver/bench/repo" ;;
    sftp) rm -rf "$SSHD_ROOT/repo" ;;
    ssh) rm -rf "$SSHD_ROOT/serve/repo" ;;
    esac
    rm -rf "$PERMAFROST_CACHE_DIR"
}
# The floors: the local repository's packs, moved by curl and by OpenSSH's sftp.
packs=$work/packs
floor_s3() { # put|get: every pack, $nconn at a time
    local op=$1
    mkdir -p "$work/floor-get"
    find "$packs" -type f | xargs -P "$nconn" -n 1 sh -c '
        name=$(basename "$1")
        if [ "$0" = put ]; then set -- -T "$1"; else set -- -o "$W/floor-get/$name"; fi
        exec curl -sSf --aws-sigv4 aws:amz:us-east-1:s3 -u "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
            -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" "$S3RVER_ENDPOINT/bench/floor/$name"' "$op"
}
floor_sftp() { # put|get: every pack, over $nconn sessions
    local op=$1 i
    mkdir -p "$work/floor-get" "$SSHD_ROOT/floor"
    rm -f "$work"/floor-batch.*
    i=0
    for f in $(find "$packs" -type f); do
        if [ "$op" = put ]; then
            echo "put $f $SSHD_ROOT/floor/$(basename "$f")"
        else
            echo "get $SSHD_ROOT/floor/$(basename "$f") $work/floor-get/$(basename "$f")"
        fi >>"$work/floor-batch.$((i % nconn))"
        i=$((i + 1))
    done
    for b in "$work"/floor-batch.*; do
        sftp -q -b "$b" -i "$SSHD_KEY" -P "$SSHD_PORT" -o UserKnownHostsFile="$work/home/.ssh/known_hosts" \
            -o StrictHostKeyChecking=yes -o BatchMode=yes -c aes128-ctr -o MACs=hmac-sha2-256 \
            -o Compression=no "$(id -un)@127.0.0.1" >/dev/null &
    done
    wait
}
export -f floor_s3 floor_sftp
export work packs nconn S3RVER_ENDPOINT SSHD_ROOT SSHD_KEY SSHD_PORT W=$work

# CPU ticks (user+sys) of the server: s3rver's node process, or sshd with every session
# it forked (children and their children, live ones; finished sessions are counted by
# the kernel in the parent's cutime/cstime).
server_ticks() {
    local pids=""
    case ${1%-floor} in
    s3) pids=$S3RVER_PID ;;
    sftp | ssh) pids="$SSHD_PID $(ps -o pid= --ppid "$SSHD_PID" | tr '\n' ' ')"
        for p in $(ps -o pid= --ppid "$SSHD_PID"); do pids="$pids $(ps -o pid= --ppid "$p" | tr '\n' ' ')"; done ;;
    *) echo 0; return ;;
    esac
    local sum=0 p
    for p in $pids; do
        # fields 14-17: utime stime cutime cstime (after the "(comm)" field)
        sum=$((sum + $(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}' || echo 0)))
    done
    echo "$sum"
}
hz=$(getconf CLK_TCK)

results=$work/results.tsv
: >"$results"
step() { # TARGET STEP CMD...: appends "target step wall kib cpu server_cpu" to results
    local target=$1 what=$2 t0 t1 s0 s1
    shift 2
    if [ "${BENCH_DROP_CACHES:-0}" = 1 ]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches
    fi
    s0=$(server_ticks "$target")
    t0=$(date +%s.%N)
    if ! HOME=$work/home /usr/bin/time -f '%M %U %S' -o "$work/rss" "$@" >"$work/$target.$what.log" 2>&1; then
        tail -n 20 "$work/$target.$what.log" >&2
        die "$target $what failed"
    fi
    t1=$(date +%s.%N)
    s1=$(server_ticks "$target")
    local kib cpu
    read -r kib cpu < <(tail -n 1 "$work/rss" | awk '{printf "%s %.2f\n", $1, $2 + $3}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$what" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')" "$kib" "$cpu" \
        "$(awk -v a="$s0" -v b="$s1" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')" >>"$results"
    echo "bench: run $run: $target $what: $(tail -n 1 "$results" | cut -f3) s wall, $cpu s CPU, server $(tail -n 1 "$results" | cut -f6) s CPU" >&2
}

for run in $(seq 1 "$runs"); do
    for t in $targets; do
        wipe_repo "$t"
        u=$(url "$t")
        # ssh:// authenticates with the serve key of PERMAFROST_SSH, not sftp's.
        kopt=(--ssh-key "${SSHD_KEY:-/dev/null}")
        [ "$t" = ssh ] && kopt=()
        HOME=$work/home "$PF" --repo "$u" "${kopt[@]}" init >"$work/$t.init.log" 2>&1 ||
            die "$t init failed: $(tail -n 5 "$work/$t.init.log")"
        sync
        step "$t" backup "$PF" --repo "$u" "${kopt[@]}" "${conn[@]}" -q backup "$data"
        rm -rf "$work/restore"
        sync
        order="restore"
        if [ -n "$before" ]; then
            [ $((run % 2)) = 1 ] && order="restore restore-before" || order="restore-before restore"
        fi
        for what in $order; do
            bin=$PF
            [ "$what" = restore ] || bin=$before
            rm -rf "$work/restore"
            sync
            step "$t" "$what" "$bin" --repo "$u" "${kopt[@]}" "${conn[@]}" -q restore latest --target "$work/restore"
            got=$(du -sb "$work/restore/data" | cut -f1)
            [ "$got" = "$total" ] || die "$t restored $got bytes, expected $total ($what)"
            cmp -s "$data/large/1.bin" "$work/restore/data/large/1.bin" || die "$t: restored large/1.bin differs ($what)"
        done
        rm -rf "$work/restore"
        [ "$t" = local ] && [ ! -d "$packs" ] && cp -al "$work/local-repo/data" "$packs"
        wipe_repo "$t"
        sync
    done
    for t in $floors; do
        rm -rf "$work/s3/s3rver/bench/floor" "${SSHD_ROOT:-$work/none}/floor" "$work/floor-get"
        sync
        step "$t" backup bash -c "floor_${t%-floor} put"
        sync
        step "$t" restore bash -c "floor_${t%-floor} get"
        got=$(find "$work/floor-get" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
        want=$(find "$packs" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
        [ "$got" = "$want" ] || die "$t got $got bytes, expected $want"
        rm -rf "$work/s3/s3rver/bench/floor" "${SSHD_ROOT:-$work/none}/floor" "$work/floor-get"
    done
done

# What the SFTP sessions negotiated (cipher and MAC decide most of libssh2's CPU per byte).
sftp_algs=""
case " $targets " in *" sftp "*)
    wipe_repo sftp
    HOME=$work/home "$PF" --repo "$(url sftp)" --ssh-key "$SSHD_KEY" init >/dev/null 2>&1 &&
        sftp_algs=$(HOME=$work/home "$PF" --repo "$(url sftp)" --ssh-key "$SSHD_KEY" -v snapshots 2>&1 |
            sed -n 's/^permafrost: sftp: session to [^:]*: //p' | head -1)
    wipe_repo sftp ;;
esac

# --- the table ----------------------------------------------------------------------------
python3 - "$results" "$total_mib" "$targets $floors" "$before" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
mib = float(sys.argv[2])
targets = sys.argv[3].split()
before = len(sys.argv) > 4 and sys.argv[4] != ""
runs = {}
for t, step, wall, kib, cpu, scpu in rows:
    runs.setdefault((t, step), []).append((float(wall), float(kib), float(cpu), float(scpu)))

def med(t, step, i):
    return statistics.median(r[i] for r in runs[(t, step)])

n = len(runs[(targets[0], "backup")])
print("Median of %d run%s. Throughput in MiB/s of the data backed up; %% of local = remote "
      "MiB/s / local MiB/s; CPU seconds (user+sys) of the client (permafrost; curl or sftp for "
      "a floor) and of the server; peak RSS of permafrost. A floor moves the local "
      "repository's packs with no permafrost work: backup = upload, restore = download."
      % (n, "" if n == 1 else "s"))
print()
print("| target | backup s | backup MiB/s | % of local | restore s | restore MiB/s | % of local "
      "| CPU backup / restore | server CPU backup / restore | RSS MiB backup / restore |")
print("|---|---|---|---|---|---|---|---|---|---|")
for t in targets:
    cells = [t.replace("-floor", " floor (%s)" % ("curl" if t.startswith("s3") else "OpenSSH sftp"))]
    for step in ("backup", "restore"):
        w = med(t, step, 0)
        cells.append("%.2f" % w)
        cells.append("%.0f" % (mib / w))
        if "local" in targets and t != "local":
            cells.append("%.0f%%" % (100 * med("local", step, 0) / w))
        else:
            cells.append("-")
    cells.append("%.1f / %.1f" % (med(t, "backup", 2), med(t, "restore", 2)))
    cells.append("-" if t == "local" else "%.1f / %.1f" % (med(t, "backup", 3), med(t, "restore", 3)))
    cells.append("-" if t.endswith("-floor") else
                 "%.0f / %.0f" % (med(t, "backup", 1) / 1024, med(t, "restore", 1) / 1024))
    print("| " + " | ".join(cells) + " |")
if before:
    print()
    print("Restore before/after (BENCH_BEFORE), same runs, medians; % of local = remote MiB/s "
          "/ local MiB/s of the same binary:")
    print()
    print("| target | before s | before % of local | after s | after % of local | after / before "
          "| RSS MiB before / after | CPU before / after |")
    print("|---|---|---|---|---|---|---|---|")
    for t in targets:
        if t.endswith("-floor"):
            continue
        b, a = med(t, "restore-before", 0), med(t, "restore", 0)
        pb = "-" if t == "local" else "%.0f%%" % (100 * med("local", "restore-before", 0) / b)
        pa = "-" if t == "local" else "%.0f%%" % (100 * med("local", "restore", 0) / a)
        print("| %s | %.2f | %s | %.2f | %s | %.2f | %.0f / %.0f | %.1f / %.1f |" % (
            t, b, pb, a, pa, a / b, med(t, "restore-before", 1) / 1024,
            med(t, "restore", 1) / 1024, med(t, "restore-before", 2), med(t, "restore", 2)))
if n > 1:
    print()
    print("Wall seconds of every run:")
    print()
    for step in ("backup", "restore") + (("restore-before",) if before else ()):
        print("- %s: %s" % (step, "; ".join("%s %s" % (t, " ".join("%.2f" % r[0] for r in runs[(t, step)]))
                                            for t in targets if (t, step) in runs)))
EOF
echo
echo "data: $total_mib MiB of random bytes ($big_n x $big_mib MiB + $small_n x 1 MiB); $(nproc) cores;" \
    "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); permafrost $("$PF" --version | cut -d' ' -f2);" \
    "connections: ${BENCH_CONNECTIONS:-default}; s3rver $(node -p 'require(process.argv[1]).version' "$root/build/node/node_modules/s3rver/package.json" 2>/dev/null || echo '?');" \
    "$(sshd -V 2>&1 | head -1 || true)"${sftp_algs:+; sftp: $sftp_algs}

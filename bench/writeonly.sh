#!/usr/bin/env bash
# What a write-only key costs a backup, against the full key, on the same data.
#
#   bench/writeonly.sh [SIZE_MIB]
#
# Makes SIZE_MIB (default 256) of random data (half in 8 large files, half in 1 MiB files).
# Each run makes two fresh format-3 repositories alike (init, then key add --write-only)
# and backs the data up into one with the full key and into the other with the write-only
# key, the order alternating between runs; then the unchanged re-run of each. Prints wall
# and CPU seconds of every run and the medians, and the ratios write-only/full. Then, on a
# 32 MiB slice, the instruction counts of both first backups under callgrind (load
# independent), without the key opening (scrypt, which both pay and which depends on which
# key file is tried first).
#
# Environment: BENCH_RUNS (default 3), PERMAFROST (binary, default ./permafrost),
# BENCH_WORK (default bench/work-wo; replaced), BENCH_CALLGRIND=0 skips callgrind.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
size_mib=${1:-${BENCH_SIZE_MIB:-256}}
work=${BENCH_WORK:-$here/work-wo}
runs=${BENCH_RUNS:-3}
PF=${PERMAFROST:-./permafrost}
case "$PF" in /*) ;; *) PF=$PWD/$PF ;; esac
[ -x "$PF" ] || { echo "bench: $PF is not executable" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time is missing" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work/data/big" "$work/data/small"
half=$((size_mib / 2))
for i in $(seq 1 8); do head -c $((half * 1048576 / 8)) /dev/urandom >"$work/data/big/f$i"; done
for i in $(seq 1 "$half"); do head -c 1048576 /dev/urandom >"$work/data/small/s$i"; done
echo "full passphrase" >"$work/full.pass"
echo "write-only passphrase" >"$work/wo.pass"
export PERMAFROST_CONFIG=/dev/null PERMAFROST_CACHE_DIR=$work/cache
unset PERMAFROST_PASSWORD PERMAFROST_REPO

fresh() { # DIR: a format-3 repository with a full and a write-only key
    rm -rf "$1"
    PERMAFROST_PASSWORD_FILE=$work/full.pass "$PF" --repo "$1" init >/dev/null 2>&1
    PERMAFROST_PASSWORD_FILE=$work/full.pass "$PF" --repo "$1" key add --write-only \
        --new-password-file "$work/wo.pass" >/dev/null
}
timed() { # PASSFILE REPO: wall and cpu seconds of one backup
    local t0 t1
    t0=$(date +%s.%N)
    PERMAFROST_PASSWORD_FILE=$1 /usr/bin/time -f "%U %S" -o "$work/time" "$PF" --repo "$2" backup "$work/data" >/dev/null 2>&1
    t1=$(date +%s.%N)
    echo "$(echo "$t1 - $t0" | bc) $(awk '{print $1 + $2}' "$work/time")"
}
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

: >"$work/results"
for r in $(seq 1 "$runs"); do
    order="full wo"
    [ $((r % 2)) = 0 ] && order="wo full"
    for m in $order; do
        fresh "$work/repo-$m"
        rm -rf "$work/cache"
        pass=$work/full.pass
        [ $m = wo ] && pass=$work/wo.pass
        echo "$m first $(timed "$pass" "$work/repo-$m")" >>"$work/results"
        echo "$m unchanged $(timed "$pass" "$work/repo-$m")" >>"$work/results"
    done
done
echo "runs (mode step wall cpu):"
cat "$work/results"
for step in first unchanged; do
    for f in 3 4; do
        full=$(awk -v s=$step -v f=$f '$1 == "full" && $2 == s {print $f}' "$work/results" | median)
        wo=$(awk -v s=$step -v f=$f '$1 == "wo" && $2 == s {print $f}' "$work/results" | median)
        what=wall
        [ $f = 4 ] && what=cpu
        echo "$step $what: full $full s, write-only $wo s, ratio $(echo "scale=3; $wo / $full" | bc)"
    done
done

if [ "${BENCH_CALLGRIND:-1}" = 1 ] && command -v valgrind >/dev/null; then
    mkdir -p "$work/slice"
    head -c 33554432 "$work/data/big/f1" >"$work/slice/f1"
    for m in full wo; do
        fresh "$work/repo-$m"
        rm -rf "$work/cache"
        pass=$work/full.pass
        [ $m = wo ] && pass=$work/wo.pass
        PERMAFROST_PASSWORD_FILE=$pass valgrind --tool=callgrind --callgrind-out-file="$work/cg.$m" \
            "$PF" --repo "$work/repo-$m" backup "$work/slice" >/dev/null 2>&1
        total=$(callgrind_annotate "$work/cg.$m" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
        scrypt=$(callgrind_annotate --inclusive=yes "$work/cg.$m" 2>/dev/null | awk '/:pf_scrypt \[/ {gsub(",", "", $1); print $1; exit}')
        echo "callgrind $m: $total instructions, of which key opening (scrypt) $scrypt, backup $((total - scrypt))"
    done
fi

#!/usr/bin/env bash
# Throughput of the engine against restic and borg on the same incompressible files.
#
#   bench/engine.sh [SIZE_MIB]
#
# Makes SIZE_MIB (default 2048) of random data: half in 10 large files, half in 1 MiB
# files. Then, for each tool in turn (same data, same run, same warm page cache):
#   backup      first backup into an empty repository
#   unchanged   the same backup again, nothing changed
#   restore     restore of the latest snapshot into an empty directory
# and prints a Markdown table of wall seconds (date +%s.%N), MiB/s, CPU seconds and peak
# RSS (/usr/bin/time), then the ratios permafrost/restic and permafrost/borg.
# Each tool runs with its defaults and encryption on (restic repository v2 with zstd
# "auto"; borg repokey-blake2 with its default lz4; permafrost zstd when it shrinks).
#
# Environment: BENCH_RUNS (default 1) repeats everything and reports medians,
# PERMAFROST (binary, default ./permafrost), BENCH_WORK (default
# bench/work; everything in it is replaced), BENCH_TOOLS (default "permafrost restic
# borg"), BENCH_KEEP=1 keeps the data and repositories, BENCH_DROP_CACHES=1 drops the page
# cache before every step (root only; default is a warm cache for every tool alike).
# restic and borg are installed with apt-get when missing (as root).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
size_mib=${1:-${BENCH_SIZE_MIB:-2048}}
work=${BENCH_WORK:-$here/work}
tools=${BENCH_TOOLS:-permafrost restic borg}
PF=${PERMAFROST:-./permafrost}
case "$PF" in /*) ;; *) PF=$PWD/$PF ;; esac

die() {
    echo "bench: $*" >&2
    exit 1
}
[ -x "$PF" ] || die "$PF is not executable: run make, or set PERMAFROST"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package: time)"
[ "$size_mib" -ge 40 ] 2>/dev/null || die "SIZE_MIB must be a number >= 40"
runs=${BENCH_RUNS:-1}
[ "$runs" -ge 1 ] 2>/dev/null || die "BENCH_RUNS must be a number >= 1"

need() { # TOOL DEBIAN-PACKAGE
    command -v "$1" >/dev/null && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bench: installing $2" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null; }
    fi
    command -v "$1" >/dev/null
}
avail=""
for t in $tools; do
    case $t in
    permafrost) avail="$avail $t" ;;
    restic) if need restic restic; then avail="$avail $t"; else echo "bench: no restic, skipping it" >&2; fi ;;
    borg) if need borg borgbackup; then avail="$avail $t"; else echo "bench: no borg, skipping it" >&2; fi ;;
    *) die "unknown tool $t" ;;
    esac
done

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
data=$work/data
[ "${BENCH_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT

export PERMAFROST_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export PERMAFROST_CONFIG=$work/permafrost.conf
: >"$PERMAFROST_CONFIG"
export RESTIC_CACHE_DIR=$work/restic-cache BORG_BASE_DIR=$work/borg-base
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

# --- the data ----------------------------------------------------------------------------
big_n=10
big_mib=$((size_mib / 2 / big_n))
small_n=$((size_mib - big_n * big_mib))
echo "bench: writing $big_n files of $big_mib MiB and $small_n files of 1 MiB to $data" >&2
mkdir -p "$data/large" "$data/small"
for i in $(seq 1 $big_n); do head -c "${big_mib}M" /dev/urandom >"$data/large/$i.bin"; done
# 1 MiB files in directories of 100, written from one stream to spare 2000 processes
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

# --- one tool's three steps ----------------------------------------------------------------
pf() { "$PF" --repo "$work/permafrost-repo" -q "$@"; }
init_permafrost() { pf init; }
backup_permafrost() { pf backup "$data"; }
restore_permafrost() { pf restore latest --target "$work/restore"; }
restored_permafrost() { echo "$work/restore/data"; }

init_restic() { restic -q -r "$work/restic-repo" init --repository-version 2; }
backup_restic() { restic -q -r "$work/restic-repo" backup "$data"; }
restore_restic() { restic -q -r "$work/restic-repo" restore latest --target "$work/restore"; }
restored_restic() { echo "$work/restore$data"; }

init_borg() { borg init -e repokey-blake2 "$work/borg-repo"; }
backup_borg() { borg create "$work/borg-repo::{now:%Y%m%d-%H%M%S.%f}" "$data"; }
restore_borg() {
    mkdir -p "$work/restore"
    (cd "$work/restore" && borg extract "$work/borg-repo::$(borg list --last 1 --short "$work/borg-repo")")
}
restored_borg() { echo "$work/restore$data"; }

results=$work/results.tsv
: >"$results"
step() { # TOOL STEP [LABEL]: runs STEP_TOOL, appends "tool label seconds peak_kib" to results
    local tool=$1 what=$2 label=${3:-$2} t0 t1
    if [ "${BENCH_DROP_CACHES:-0}" = 1 ]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches
    fi
    t0=$(date +%s.%N)
    if ! /usr/bin/time -f '%M %U %S' -o "$work/rss" bash -c "$(declare -f pf "${what}_$tool"); ${what}_$tool" \
        >"$work/$tool.$label.log" 2>&1; then
        tail -n 20 "$work/$tool.$label.log" >&2
        die "$tool $label failed"
    fi
    t1=$(date +%s.%N)
    local kib cpu
    read -r kib cpu < <(tail -n 1 "$work/rss" | awk '{printf "%s %.2f\n", $1, $2 + $3}')
    printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$label" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')" "$kib" "$cpu" >>"$results"
    echo "bench: run $run: $tool $label: $(tail -n 1 "$results" | cut -f3) s wall, $cpu s CPU" >&2
}

export PF data work
# The tools take turns within each run, so a disk that is slower for a while (a shared
# virtual disk is) weighs on all of them; the table shows the median of the runs.
for run in $(seq 1 "$runs"); do
    for t in $avail; do
        "init_$t" >"$work/$t.init.log" 2>&1 || die "$t init failed: $(tail -n 5 "$work/$t.init.log")"
        sync
        step "$t" backup
        step "$t" backup unchanged
        rm -rf "$work/restore"
        sync
        step "$t" restore
        got=$(du -sb "$("restored_$t")" | cut -f1)
        [ "$got" = "$total" ] || die "$t restored $got bytes, expected $total"
        repo_size=$(du -sb "$work/$t-repo" | cut -f1)
        printf '%s\trepo\t%s\t-\t-\n' "$t" "$repo_size" >>"$results"
        rm -rf "$work/restore" "$work/$t-repo" "$work/restic-cache" "$work/borg-base"
        sync
    done
done

# --- the table ----------------------------------------------------------------------------
python3 - "$results" "$total_mib" "$avail" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
mib = float(sys.argv[2])
tools = sys.argv[3].split()
runs = {}
for t, step, wall, kib, cpu in rows:
    runs.setdefault((t, step), []).append((wall, kib, cpu))

def med(t, step, i):
    return statistics.median(float(r[i]) for r in runs[(t, step)])

steps = [("backup", "first backup"), ("unchanged", "unchanged re-run"), ("restore", "restore")]
ratios = [t for t in ("restic", "borg") if t in tools and "permafrost" in tools]
n = len(runs[(tools[0], "backup")])
print("Median of %d run%s. Each cell: wall seconds (MiB/s) / CPU seconds (user+sys) / peak RSS MiB."
      % (n, "" if n == 1 else "s"))
print()
print("| step | " + " | ".join(tools) + "".join(" | permafrost/%s wall (CPU)" % t for t in ratios) + " |")
print("|" + "---|" * (1 + len(tools) + len(ratios)))
for key, label in steps:
    cells = []
    for t in tools:
        w = med(t, key, 0)
        cells.append("%.2f (%.0f) / %.1f / %.0f" % (w, mib / w if w > 0 else 0, med(t, key, 2),
                                                     med(t, key, 1) / 1024))
    for t in ratios:
        cells.append("%.2f (%.2f)" % (med("permafrost", key, 0) / med(t, key, 0),
                                      med("permafrost", key, 2) / med(t, key, 2)))
    print("| %s | %s |" % (label, " | ".join(cells)))
print("| repository size | %s |%s" % (" | ".join("%.0f MiB" % (med(t, "repo", 0) / 1048576) for t in tools),
                                      " |" * len(ratios)))
if n > 1:
    print()
    print("Wall seconds of every run:")
    print()
    for key, label in steps:
        print("- %s: %s" % (label, "; ".join("%s %s" % (t, " ".join(r[0] for r in runs[(t, key)])) for t in tools)))
EOF
echo
echo "data: $total_mib MiB of random bytes ($big_n x $big_mib MiB + $small_n x 1 MiB); $(nproc) cores;" \
    "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); permafrost $("$PF" --version | cut -d' ' -f2)," \
    "$(restic version 2>/dev/null | cut -d' ' -f1-2 || true), $(borg --version 2>/dev/null || true)"

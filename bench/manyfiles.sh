#!/usr/bin/env bash
# Memory and time of a backup of many small files, against restic, as the tree grows.
#
#   bench/manyfiles.sh
#
# Grows one tree of small files (each 64-320 bytes of its own content, 1000 a directory,
# 100 directories a group, as a media folder) to each size in MANY_COUNTS, and at each
# size, for each tool in turn:
#   backup      first backup into an empty repository
#   unchanged   the same backup again, nothing changed (MANY_RERUNS times; the median)
# with wall seconds (date +%s.%N) and peak RSS (/usr/bin/time %M). Prints a Markdown
# table, the ratio permafrost/restic of the unchanged re-run, and each tool's growth in
# MB of peak RSS per million files between the two largest sizes.
#
# The tree is grown, not remade: files are only added, so the sizes cost the largest's
# files once. A tree of 5 million files takes ~20 GB (one block each) and as many inodes.
#
# Environment: MANY_COUNTS ("500000 1000000 2000000"), MANY_TOOLS ("permafrost restic"),
# MANY_RERUNS (3), MANY_RESTIC_RERUNS (MANY_RERUNS; restic's re-run of a million files
# takes minutes), MANY_RESTIC_MAX (no limit: above this many files restic is skipped),
# PERMAFROST (binary, default ./permafrost), MANY_PF_BASE (a second permafrost, e.g. main's
# build: its unchanged re-runs alternate with PERMAFROST's on the same repository, rows
# "permafrost-base", an A/B of a change at each size), MANY_WORK (default bench/work-many;
# everything in it is replaced), MANY_KEEP=1 keeps it, MANY_REUSE=1 keeps a tree a kept
# run grew (its size is in MANY_WORK/grown) and grows it on, and keeps the kept run's
# results (MANY_WORK/results.tsv): the table then holds every size measured on that tree.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
counts=${MANY_COUNTS:-500000 1000000 2000000}
tools=${MANY_TOOLS:-permafrost restic}
reruns=${MANY_RERUNS:-3}
work=${MANY_WORK:-$here/work-many}
PF=${PERMAFROST:-./permafrost}
case "$PF" in /*) ;; *) PF=$PWD/$PF ;; esac
BASE=${MANY_PF_BASE:-}
case "$BASE" in /* | "") ;; *) BASE=$PWD/$BASE ;; esac

die() {
    echo "bench: $*" >&2
    exit 1
}
[ -x "$PF" ] || die "$PF is not executable: run make, or set PERMAFROST"
[ -z "$BASE" ] || [ -x "$BASE" ] || die "MANY_PF_BASE $BASE is not executable"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package: time)"
case " $tools " in *" restic "*) command -v restic >/dev/null || die "restic is missing (apt-get install -y restic)" ;; esac

reused=0
if [ "${MANY_REUSE:-0}" = 1 ] && [ -f "$work/grown" ]; then
    find "$work" -mindepth 1 -maxdepth 1 ! -name data ! -name grown ! -name results.tsv -exec rm -rf {} +
    reused=1
else
    rm -rf "$work"
fi
mkdir -p "$work"
work=$(cd "$work" && pwd)
[ "${MANY_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
data=$work/data
mkdir -p "$data"

export PERMAFROST_PASSWORD=bench PERMAFROST_CONFIG=$work/permafrost.conf
export PERMAFROST_CACHE_DIR=$work/pf-cache
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$work/restic-cache
: >"$PERMAFROST_CONFIG"
unset PERMAFROST_REPO PERMAFROST_PASSWORD_FILE RESTIC_REPOSITORY

# grow N: adds files until the tree holds N.
have=0
[ -f "$work/grown" ] && have=$(cat "$work/grown")
grow() {
    python3 - "$data" "$have" "$1" <<'EOF'
import os, sys
top, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
made = None
for i in range(start, end):
    d = os.path.join(top, "g%03d" % (i // 100000), "d%05d" % (i // 1000))
    if d != made:
        os.makedirs(d, exist_ok=True)
        made = d
    body = (b"file %d of the bench tree\n" % i) * (1 + i % 10)
    fd = os.open(os.path.join(d, "f%07d" % i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, body[:64 + (i * 37) % 257])
    os.close(fd)
EOF
    have=$1
    echo "$have" >"$work/grown"
}

results=$work/results.tsv
[ "$reused" = 1 ] || : >"$results"
step() { # COUNT TOOL STEP CMD...: appends "count tool step wall kib" to results
    local count=$1 tool=$2 what=$3 t0 t1 kib
    shift 3
    t0=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$work/rss" "$@" >"$work/$tool.$what.log" 2>&1 || {
        tail -n 20 "$work/$tool.$what.log" >&2
        die "$tool $what at $count files failed"
    }
    t1=$(date +%s.%N)
    kib=$(tail -n 1 "$work/rss")
    printf '%s\t%s\t%s\t%s\t%s\n' "$count" "$tool" "$what" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')" "$kib" >>"$results"
    echo "bench: $count files: $tool $what: $(tail -n 1 "$results" | cut -f4) s, $((kib / 1024)) MB (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
}

for n in $counts; do
    t0=$(date +%s)
    [ "$n" -ge "$have" ] || die "the kept tree holds $have files, more than $n"
    grow "$n"
    sync
    echo "bench: tree of $n files ($(du -sh "$data" | cut -f1)) grown in $(($(date +%s) - t0)) s" >&2
    for t in $tools; do
        rr=$reruns
        if [ "$t" = restic ]; then
            rr=${MANY_RESTIC_RERUNS:-$reruns}
            [ -z "${MANY_RESTIC_MAX:-}" ] || [ "$n" -le "$MANY_RESTIC_MAX" ] || continue
        fi
        rm -rf "$work/repo" "$PERMAFROST_CACHE_DIR" "$RESTIC_CACHE_DIR"
        case $t in
        permafrost)
            "$PF" --repo "$work/repo" init >/dev/null
            cmd=("$PF" --repo "$work/repo" -q backup "$data") ;;
        restic)
            restic -q -r "$work/repo" init --repository-version 2 >/dev/null
            cmd=(restic -q -r "$work/repo" backup "$data") ;;
        *) die "unknown tool $t (permafrost, restic)" ;;
        esac
        step "$n" "$t" backup "${cmd[@]}"
        for _ in $(seq 1 "$rr"); do
            step "$n" "$t" unchanged "${cmd[@]}"
            [ "$t" = permafrost ] && [ -n "$BASE" ] &&
                step "$n" permafrost-base unchanged "$BASE" --repo "$work/repo" -q backup "$data"
        done
        rm -rf "$work/repo"
    done
done

python3 - "$results" "$tools${BASE:+ permafrost-base}" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
tools = sys.argv[2].split()
r = {}
for n, t, what, wall, kib in rows:
    r.setdefault((int(n), t, what), []).append((float(wall), int(kib) / 1024))
counts = sorted({k[0] for k in r})
med = lambda n, t, w, i: statistics.median(x[i] for x in r[(n, t, w)]) if (n, t, w) in r else float("nan")
print("| files | tool | backup s | backup peak MB | unchanged s (median) | unchanged peak MB |")
print("|---:|---|---:|---:|---:|---:|")
for n in counts:
    for t in tools:
        if (n, t, "backup") not in r and (n, t, "unchanged") not in r:
            continue
        print("| %d | %s | %.1f | %.0f | %.2f | %.0f |" % (n, t, med(n, t, "backup", 0),
              med(n, t, "backup", 1), med(n, t, "unchanged", 0), med(n, t, "unchanged", 1)))
if "permafrost" in tools and "restic" in tools:
    print()
    print("| files | unchanged permafrost / restic | peak MB permafrost / restic (backup) |")
    print("|---:|---:|---:|")
    for n in counts:
        print("| %d | %.2f | %.2f |" % (n, med(n, "permafrost", "unchanged", 0) / med(n, "restic", "unchanged", 0),
              med(n, "permafrost", "backup", 1) / med(n, "restic", "backup", 1)))
if "permafrost-base" in tools:
    print()
    print("| files | unchanged permafrost / permafrost-base (same repository, alternating) |")
    print("|---:|---:|")
    for n in counts:
        print("| %d | %.2f |" % (n, med(n, "permafrost", "unchanged", 0) / med(n, "permafrost-base", "unchanged", 0)))
print()
for t in tools:
    mine = [n for n in counts if (n, t, "backup") in r]
    if len(mine) < 2:
        continue
    a, b = mine[-2], mine[-1]
    for w in ("backup", "unchanged"):
        slope = (med(b, t, w, 1) - med(a, t, w, 1)) / ((b - a) / 1e6)
        secs = (med(b, t, w, 0) - med(a, t, w, 0)) / ((b - a) / 1e6)
        print("%s %s: %.1f MB of peak RSS and %.1f s per million files (%d -> %d)" % (t, w, slope, secs, a, b))
EOF

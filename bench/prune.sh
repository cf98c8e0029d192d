#!/usr/bin/env bash
# Prune's memory on a repository of about one million blobs: peak RSS (/usr/bin/time %M)
# and wall time of prune, and of check, against a limit (default 200 MB).
#
#   bench/prune.sh
#
# The repository is made by bench/prune_blobs (build/libpf.a): N tiny distinct data blobs
# written straight through the saver, and one snapshot whose trees hold every other one as
# a file, so half the blobs are unused and every pack is half used: the prune rewrites
# every pack (the most work a prune does per blob). Made in BATCHES savers, the blobs are
# listed by that many index files (one backup of a million small files writes one index
# file; a million blobs gathered over many backups are spread over many).
#
# Measured, each on its own hard-linked copy of the same repository:
#   check            structure only
#   prune --dry-run  passes 1-2: marking and deciding
#   prune            everything: rewrites every pack (default --max-unused 10)
#   prune again      the repository after a prune: nothing to do
#   check            after the prune (and check --read-data with PRUNE_READ_DATA=1)
#
# Environment: PRUNE_BLOBS ("1000000"; a list measures each), PRUNE_BATCHES ("1 10"),
# PRUNE_BLOB_BYTES ("64 1024": each blob's size; tiny blobs make packs of ~170,000 blobs,
# 1 KiB ones ~24,000, so the second shows what is per blob and what per pack),
# PRUNE_LIMIT_MB (200), PERMAFROST (the binary measured; default ./permafrost, built),
# PRUNE_BEFORE (an older binary: every command is measured with it too, right after, on
# its own fresh copy, so before and after come from one run), PRUNE_WORK (a directory with room for ~0.5 GB per million blobs;
# default a temporary one, removed at the end). Exits 1 when a prune's peak RSS is over
# the limit. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD

BLOBS=${PRUNE_BLOBS:-1000000}
BATCHES=${PRUNE_BATCHES:-1 10}
SIZES=${PRUNE_BLOB_BYTES:-64 1024}
LIMIT_MB=${PRUNE_LIMIT_MB:-200}
[ -x /usr/bin/time ] || { echo "bench/prune.sh: needs /usr/bin/time (Debian package time)" >&2; exit 2; }

make -s permafrost build/bench/prune_blobs >/dev/null
PF=${PERMAFROST:-$SRC/permafrost}
BEFORE=${PRUNE_BEFORE:-}
TOOL=$SRC/build/bench/prune_blobs

if [ -n "${PRUNE_WORK:-}" ]; then
    W=$PRUNE_WORK
    mkdir -p "$W"
    KEEP=1
else
    W=$(mktemp -d "${TMPDIR:-/tmp}/pf-bench-prune.XXXXXX")
    KEEP=0
fi
cleanup() { [ $KEEP = 1 ] || rm -rf "$W"; }
trap cleanup EXIT

export PERMAFROST_PASSWORD=bench-prune
export PERMAFROST_CONFIG=$W/empty.conf
: >"$PERMAFROST_CONFIG"
unset PERMAFROST_REPO PERMAFROST_PASSWORD_FILE

# measure LABEL CMD...: runs CMD under /usr/bin/time; prints a table row; sets PEAK_MB.
ROWS=()
measure() {
    local label=$1
    shift
    /usr/bin/time -f '%M %e' -o "$W/time.txt" "$@" >"$W/cmd.out" 2>"$W/cmd.err" || {
        echo "bench/prune.sh: $label failed:" >&2
        cat "$W/cmd.err" >&2
        exit 1
    }
    local kb secs
    read -r kb secs <"$W/time.txt"
    PEAK_MB=$((kb / 1024))
    ROWS+=("| $CASE | $label | $PEAK_MB | $secs | $(head -n 1 "$W/cmd.out" | cut -c1-110) |")
    printf '%-42s %-16s peak %5d MB  %7s s  %s\n' "$CASE" "$label" "$PEAK_MB" "$secs" "$(head -n 1 "$W/cmd.out")"
}

over=0
for n in $BLOBS; do
  for sz in $SIZES; do
    for b in $BATCHES; do
        CASE="$n blobs of $sz B, $b index file(s)"
        base=$W/base-$n-$sz-$b
        rm -rf "$base"
        "$PF" --repo "$base" init >/dev/null
        t0=$(date +%s.%N)
        "$TOOL" "$base" "$n" "$b" "$sz" 2>"$W/tool.err" || { cat "$W/tool.err" >&2; exit 1; }
        t1=$(date +%s.%N)
        echo "made $CASE in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s:" \
            "$(du -sh "$base" | cut -f1), $(find "$base/data" -type f | wc -l) packs," \
            "$(find "$base/index" -type f | wc -l) index files"
        repo=$W/run
        fresh() { rm -rf "$repo"; cp -al "$base" "$repo"; }
        for bin in "$PF" $BEFORE; do
            tag=""
            [ "$bin" = "$PF" ] || tag=" (before)"
            fresh
            measure "check$tag" "$bin" --repo "$repo" check
            measure "prune --dry-run$tag" "$bin" --repo "$repo" prune --dry-run
            measure "prune$tag" "$bin" --repo "$repo" prune
            [ -n "$tag" ] || [ $PEAK_MB -le "$LIMIT_MB" ] || over=1
            measure "prune again$tag" "$bin" --repo "$repo" prune
            [ -n "$tag" ] || [ $PEAK_MB -le "$LIMIT_MB" ] || over=1
            measure "check after$tag" "$bin" --repo "$repo" check
            if [ "${PRUNE_READ_DATA:-0}" = 1 ]; then
                measure "check --read-data$tag" "$bin" --repo "$repo" check --read-data
            fi
        done
        rm -rf "$repo" "$base"
    done
  done
done

echo
echo "| repository | command | peak RSS (MB) | wall (s) | output |"
echo "|---|---|---:|---:|---|"
printf '%s\n' "${ROWS[@]}"
echo
if [ $over = 1 ]; then
    echo "prune's peak RSS went over ${LIMIT_MB} MB"
    exit 1
fi
echo "prune's peak RSS stayed under ${LIMIT_MB} MB"

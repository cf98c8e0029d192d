#!/usr/bin/env bash
# The parallel walk (issue 15): re-runs of `backup --live` by two binaries, interleaved.
#
#   bench/parallel_walk.sh INSTANCE_DIR WORK_DIR BASE_BIN NEW_BIN [ROUNDS]
#
# Each binary has its own repository (so each re-run's parent is its own last snapshot):
# one full backup each, then ROUNDS (3) unchanged re-runs and ROUNDS busy days (`instance
# churn`, then both binaries back up the same changes), the order of the two alternating
# by round. Prints one line per run: what, binary, wall, user, sys seconds; then medians.
# The machine is shared: compare the two within one run of this script, never across runs.
set -euo pipefail
inst=$1 work=$2 base=$3 new=$4 rounds=${5:-3}
here=$(cd "$(dirname "$0")" && pwd)
testbed=${TESTBED:-$here/../../shared/testbed}
[ -x "$testbed/instance" ] || testbed=/work/shared/testbed
. "$inst/instance.env"
export PERMAFROST_PASSWORD=bench-passphrase
mkdir -p "$work"
out=$work/runs.tsv
: > "$out"
n=0
run() { # LABEL NAME BIN
    n=$((n + 1))
    /usr/bin/time -f '%e %U %S' -o "$work/.time" \
        "$3" -q --repo "$work/repo-$2" backup --live "$MASTODON_LIVE" > "$work/$n.$2.$1.log" 2>&1
    printf '%s\t%s\t%s\n' "$1" "$2" "$(tail -1 "$work/.time" | tr ' ' '\t')" | tee -a "$out"
}
# The first backups are kept when the repositories exist (KEEP=1): only re-runs are compared.
for b in base new; do
    bin=$base; [ $b = new ] && bin=$new
    [ "${KEEP:-0}" = 1 ] && [ -d "$work/repo-$b" ] && continue
    rm -rf "$work/repo-$b"
    "$bin" -q --repo "$work/repo-$b" init > /dev/null
    run full $b "$bin"
done
for i in $(seq "$rounds"); do
    if [ $((i % 2)) = 1 ]; then run unchanged base "$base"; run unchanged new "$new"
    else run unchanged new "$new"; run unchanged base "$base"; fi
done
for i in $(seq "$rounds"); do
    "$testbed/instance" churn "$inst" > /dev/null
    if [ $((i % 2)) = 1 ]; then run busy base "$base"; run busy new "$new"
    else run busy new "$new"; run busy base "$base"; fi
done
echo "medians (wall user sys) and new/base ratios:"
awk -F'\t' '{ k = $1 "\t" $2; n[k]++; w[k, n[k]] = $3; u[k, n[k]] = $4; s[k, n[k]] = $5 }
function med(a, k, c,   v, i, j, t) { for (i = 1; i <= c; i++) v[i] = a[k, i];
    for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2 }
END { split("unchanged busy", L, " "); for (l = 1; l <= 2; l++) { for (b = 0; b < 2; b++) {
        name = b ? "new" : "base"; k = L[l] "\t" name
        W[b] = med(w, k, n[k]); C[b] = med(u, k, n[k]) + med(s, k, n[k])
        printf "%-9s %-4s wall %6.2f  cpu %6.2f  (n=%d)\n", L[l], name, W[b], C[b], n[k] }
      printf "%-9s new/base: wall %.2f  cpu %.2f\n", L[l], W[1] / W[0], C[1] / C[0] } }' "$out"

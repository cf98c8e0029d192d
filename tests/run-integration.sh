#!/usr/bin/env bash
# Runs the integration suite: every executable tests/integration/*.sh, one at a time.
#
#   tests/run-integration.sh [FILTER...]
#
# A FILTER keeps the scripts whose name (without .sh) contains it. Each script runs in a
# fresh temporary directory (its working directory and $TMPDIR), with no terminal and no
# stdin, and with these variables exported:
#   PERMAFROST   absolute path of the binary under test (default $PWD/permafrost)
#   BUILD        the build directory (default build)
#   PF_SRC       the source tree (this script's ../)
#   PF_TESTLIB   $PF_SRC/tests/lib (compare_trees.py and friends)
# A script passes when it exits 0. When the binary is built with AddressSanitizer or
# UBSan, every sanitizer report written while a script runs fails it too, even when the
# script expected that command to fail (a leak on an error path is still a leak).
#
# Environment: PF_TEST_TIMEOUT (seconds per script, default 900), PF_KEEP_TMP=1 keeps the
# temporary directories of failed scripts, PF_TEST_VERBOSE=1 prints every script's output.
# Prints one line per script and then exactly "N passed, N failed"; exits 1 if any failed.
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PERMAFROST=${PERMAFROST:-$PWD/permafrost}
case "$PERMAFROST" in /*) ;; *) PERMAFROST=$PWD/$PERMAFROST ;; esac
BUILD=${BUILD:-build}
export PERMAFROST BUILD PF_SRC="$SRC" PF_TESTLIB="$SRC/tests/lib"
timeout_s=${PF_TEST_TIMEOUT:-900}

if [ ! -x "$PERMAFROST" ]; then
    echo "run-integration: $PERMAFROST is not an executable (run make, or set PERMAFROST)" >&2
    exit 2
fi

scripts=()
for f in "$SRC"/tests/integration/*.sh; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .sh)
    if [ $# -gt 0 ]; then
        keep=0
        for pat in "$@"; do
            case "$name" in *"$pat"*) keep=1 ;; esac
        done
        [ $keep = 1 ] || continue
    fi
    scripts+=("$f")
done

base_tmp=${TMPDIR:-/tmp}
# The directory of every temporary tree made here, removed on any exit of the runner.
run_dir=$(mktemp -d "$base_tmp/pf-integration.XXXXXX") || exit 1
# Scripts may run permafrost as another user (e.g. nobody, to meet an unreadable file as
# root): let it reach the script's directory and write sanitizer reports.
chmod 755 "$run_dir"
cleanup() {
    # Scripts may leave read-only or root-owned modes behind: make everything removable.
    chmod -R u+rwx "$run_dir" 2>/dev/null
    rm -rf "$run_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
failed_names=()
for f in "${scripts[@]}"; do
    name=$(basename "$f" .sh)
    work="$run_dir/$name"
    mkdir -p "$work/tmp" "$work/sanitizer"
    chmod 755 "$work" "$work/tmp"
    chmod 1777 "$work/sanitizer"
    log="$work/output.log"
    san="$work/sanitizer"
    start=$(date +%s.%N)
    if [ ! -x "$f" ]; then
        echo "not executable: chmod +x $f" >"$log"
        rc=126
    else
        # setsid: no controlling terminal, so nothing can prompt; stdin is /dev/null.
        (
            cd "$work/tmp" &&
                TMPDIR="$work/tmp" \
                    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$san/asan" \
                    UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$san/ubsan" \
                    LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}log_path=$san/lsan" \
                    exec setsid -w timeout -k 10 "$timeout_s" "$f"
        ) </dev/null >"$log" 2>&1
        rc=$?
    fi
    secs=$(echo "$(date +%s.%N) $start" | awk '{printf "%.1f", $1 - $2}')
    reports=$(find "$san" -type f -size +0 2>/dev/null | sort)
    if [ $rc = 0 ] && [ -z "$reports" ]; then
        passed=$((passed + 1))
        printf 'PASS  %-24s %6ss\n' "$name" "$secs"
        [ "${PF_TEST_VERBOSE:-0}" = 1 ] && sed 's/^/    /' "$log"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        why="exit $rc"
        [ $rc = 124 ] && why="timed out after ${timeout_s}s"
        [ -n "$reports" ] && why="$why, sanitizer reports"
        printf 'FAIL  %-24s %6ss  (%s)\n' "$name" "$secs" "$why"
        # The end of the output is where a failing script says what went wrong.
        tail -n 60 "$log" | sed 's/^/    | /'
        for r in $reports; do
            echo "    --- $(basename "$r")"
            head -n 80 "$r" | sed 's/^/    | /'
        done
        if [ "${PF_KEEP_TMP:-0}" = 1 ]; then
            keep=$(mktemp -d "$base_tmp/pf-failed-$name.XXXXXX")
            cp -a "$work/." "$keep/" 2>/dev/null
            echo "    kept in $keep"
        fi
    fi
    chmod -R u+rwx "$work" 2>/dev/null
    rm -rf "$work"
done

echo "$passed passed, $failed failed"
[ $failed = 0 ]

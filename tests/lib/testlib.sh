# Shared preamble of the integration scripts: source it first.
#   . "$PF_SRC/tests/lib/testlib.sh" NAME
# Sets PF (the binary), SRC, W (a scratch directory removed at exit, also on failure), an
# ERR trap that names the failing line, an empty config file (nothing of
# /etc/permafrost.conf leaks in) and no PERMAFROST_* variables from the caller; and gives:
#   say TEXT            a section heading
#   ok TEXT             a passed assertion
#   fail TEXT           fails the script
#   run RC CMD...       runs CMD with stdout in $W/out.txt, stderr in $W/err.txt; fails
#                       (showing both) unless CMD exits RC
#   has FILE TEXT       fails unless FILE contains TEXT
#   lacks FILE TEXT     fails if FILE contains TEXT
#   wait_for SECS CMD...  polls CMD every 0.05 s until it succeeds; fails after SECS
#   on_exit CMD         runs CMD at exit (before W is removed), last added first
set -eEuo pipefail
trap 'echo "FAIL: line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR

PF=${PERMAFROST:-$PWD/permafrost}
SRC=${PF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
W=$(mktemp -d "${TMPDIR:-/tmp}/pf-${1:-test}.XXXXXX")
_testlib_exit=()
_testlib_cleanup() {
    local i
    for ((i = ${#_testlib_exit[@]} - 1; i >= 0; i--)); do
        eval "${_testlib_exit[i]}" || true
    done
    rm -rf "$W"
}
trap _testlib_cleanup EXIT
on_exit() { _testlib_exit+=("$1"); }

unset PERMAFROST_PASSWORD PERMAFROST_PASSWORD_FILE PERMAFROST_REPO PERMAFROST_LOCK_WAIT JOURNAL_STREAM
: >"$W/empty.conf"
export PERMAFROST_CONFIG="$W/empty.conf"

say() { echo "== $*"; }
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
run() {
    local want=$1 rc=0
    shift
    "$@" >"$W/out.txt" 2>"$W/err.txt" || rc=$?
    if [ "$rc" != "$want" ]; then
        echo "command: $*" >&2
        echo "--- stdout" >&2
        tail -c 2000 "$W/out.txt" >&2 || true
        echo "--- stderr" >&2
        tail -c 2000 "$W/err.txt" >&2 || true
        fail "exit code $rc, expected $want"
    fi
}
has() {
    grep -qF -- "$2" "$1" || {
        echo "--- $1:" >&2
        cat "$1" >&2
        fail "$1 lacks: $2"
    }
}
lacks() {
    if grep -qF -- "$2" "$1"; then
        echo "--- $1:" >&2
        cat "$1" >&2
        fail "$1 has: $2"
    fi
}
wait_for() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 20; i++)); do
        "$@" 2>/dev/null && return 0
        sleep 0.05
    done
    fail "waited ${secs} s for: $*"
}

# The counting style of the long integration scripts: an assertion that fails is counted
# and the script goes on, so one run shows every failure; the script ends with
#   [ "$FAILED" = 0 ]
# Source it after setting T (a scratch directory) and L (where captured outputs go).
#   ok TEXT / fail TEXT     a passed / failed assertion (fail counts in FAILED)
#   die TEXT                fails and stops the script
#   run NAME CMD...         stdout/stderr in $L/NAME.out/.err; RC its status, OUT/ERR the files
#   show [N]                the last N lines of the last run's output
#   rc_is "WANT..." TEXT    the last run's status is one of WANT
#   has / hasnt TEXT NEEDLE [FILE...]   the last run's output (or FILEs) does (not) hold NEEDLE
#   same TEXT FILE1 FILE2   the two files are identical (the diff is shown when not)
FAILED=0
ok() { echo "ok   $*"; }
fail() {
    echo "FAIL $*"
    FAILED=$((FAILED + 1))
}
die() {
    echo "FAIL $*"
    exit 1
}
run() {
    local name=$1
    shift
    "$@" >"$L/$name.out" 2>"$L/$name.err"
    RC=$?
    OUT=$L/$name.out ERR=$L/$name.err
}
show() { sed 's/^/     | /' "$OUT" "$ERR" | tail -"${1:-15}"; }
rc_is() {
    case " $1 " in
        *" $RC "*) ok "$2" ;;
        *)
            fail "$2: exit $RC, wanted $1"
            show
            ;;
    esac
}
has() {
    local what=$1 text=$2
    shift 2
    [ $# -gt 0 ] || set -- "$OUT" "$ERR"
    if grep -qF -- "$text" "$@"; then ok "$what"; else
        fail "$what: no \"$text\" in"
        sed 's/^/     | /' "$@" | tail -10
    fi
}
hasnt() {
    local what=$1 text=$2
    shift 2
    [ $# -gt 0 ] || set -- "$OUT" "$ERR"
    if grep -qF -- "$text" "$@"; then
        fail "$what: \"$text\" found in"
        grep -nF -- "$text" "$@" | sed 's/^/     | /' | head -5
    else ok "$what"; fi
}
same() {
    if diff -u "$2" "$3" >"$T/diff"; then ok "$1"; else
        fail "$1"
        sed 's/^/     | /' "$T/diff" | head -30
    fi
}

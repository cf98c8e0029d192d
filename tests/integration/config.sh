#!/usr/bin/env bash
# The configuration file through the real CLI (no servers; a local repository, seconds):
#   check    config check FILE: "FILE: ok" and exit 0 for a good file and for the shipped
#            example; every problem as FILE:LINE and exit 2 for a bad one, even when the
#            bad file is also the one PERMAFROST_CONFIG names; a missing file is exit 2
#   refuse   every command refuses to run with a bad config (unknown key with the nearest
#            known one, bad number, bad yes/no), naming file and line, exit 2, and does
#            nothing: no repository is created
#   applied  a good config still takes effect: repository, password_file and keep_last
#            from the file drive init, backup and forget with no options
#   table    every key that the code reads (pf_config_get("KEY") in src/) is in the table
#            that 'config keys' prints, so no read key can be refused as unknown
set -eEuo pipefail
trap 'echo "FAIL: line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR

PF=${PERMAFROST:-$PWD/permafrost}
SRC=${PF_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}

W=$(mktemp -d "${TMPDIR:-/tmp}/pf-config.XXXXXX")
trap 'rm -rf "$W"' EXIT
unset PERMAFROST_PASSWORD PERMAFROST_PASSWORD_FILE PERMAFROST_REPO PERMAFROST_LOCK_WAIT
: >"$W/empty.conf"
export PERMAFROST_CONFIG="$W/empty.conf" # nothing from /etc/permafrost.conf

say() { echo "== $*"; }
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
# run RC CMD...: stdout in $W/out.txt, stderr in $W/err.txt; fails unless CMD exits RC.
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
has() { # has FILE TEXT
    grep -qF -- "$2" "$1" || {
        echo "--- $1:" >&2
        cat "$1" >&2
        fail "$1 lacks: $2"
    }
}

cat >"$W/good.conf" <<EOF
[permafrost]
repository = $W/repo
password_file = $W/pass
  keep_last = 1
exclude_cache = yes
lock_wait = 5
EOF
cat >"$W/bad.conf" <<EOF
repository = $W/never
keep_daly = 7
pg_port = postgres
exclude_cache = maybe
keep_weekly = 5 # five weeks
EOF
echo config-test-passphrase >"$W/pass"

say check
run 0 "$PF" config check "$W/good.conf"
[ "$(cat "$W/out.txt")" = "$W/good.conf: ok" ] || fail "config check printed: $(cat "$W/out.txt")"
ok "a good file: FILE: ok, exit 0"
run 0 "$PF" config check "$SRC/contrib/permafrost.conf"
has "$W/out.txt" "contrib/permafrost.conf: ok"
ok "the shipped example is valid"
# The file to check is also the broken config in effect: still checked, every problem.
PERMAFROST_CONFIG=$W/bad.conf run 2 "$PF" config check
has "$W/err.txt" "$W/bad.conf:2: unknown key \"keep_daly\": did you mean keep_daily?"
has "$W/err.txt" "$W/bad.conf:3: pg_port (integer): \"postgres\" is not a whole number"
has "$W/err.txt" "$W/bad.conf:4: exclude_cache (yes/no): \"maybe\""
has "$W/err.txt" "$W/bad.conf:5: keep_weekly (count)"
has "$W/err.txt" "4 problems"
[ ! -s "$W/out.txt" ] || fail "config check of a bad file printed on stdout: $(cat "$W/out.txt")"
ok "a bad file: each problem with its line, exit 2"
run 2 "$PF" --json config check "$W/bad.conf"
python3 - "$W/out.txt" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"] is False, d
assert [p["line"] for p in d["problems"]] == [2, 3, 4, 5], d
EOF
ok "--json lists the problems with their lines"
run 2 "$PF" config check "$W/absent.conf"
has "$W/err.txt" "cannot read config file $W/absent.conf"
ok "a missing file is exit 2"

say refuse
run 2 "$PF" --config "$W/bad.conf" init
has "$W/err.txt" "$W/bad.conf:2: unknown key \"keep_daly\": did you mean keep_daily?"
has "$W/err.txt" "and 3 more: 'permafrost config check $W/bad.conf'"
[ ! -e "$W/never" ] || fail "init ran with a bad config"
PERMAFROST_CONFIG=$W/bad.conf run 2 "$PF" snapshots
has "$W/err.txt" "$W/bad.conf:2:"
printf 'lock_wait = soon\n' >"$W/bad2.conf"
run 2 "$PF" --config "$W/bad2.conf" --repo "$W/never" init
has "$W/err.txt" "$W/bad2.conf:1: lock_wait (seconds): \"soon\""
[ ! -e "$W/never" ] || fail "init ran with a bad config"
ok "commands refuse a bad config, naming file and line; nothing is created"

say applied
run 0 "$PF" --config "$W/good.conf" init
[ -e "$W/repo/config" ] || fail "init did not create the repository of the config"
mkdir -p "$W/data"
for i in 1 2 3; do
    echo "version $i" >"$W/data/f"
    run 0 "$PF" --config "$W/good.conf" backup "$W/data"
done
run 0 "$PF" --config "$W/good.conf" forget
! grep -F 'bug: config key' "$W/err.txt" || fail "forget read a key that is not in the table"
run 0 "$PF" --config "$W/good.conf" --json snapshots
n=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d if isinstance(d, list) else d["snapshots"]))' "$W/out.txt")
[ "$n" = 1 ] || fail "keep_last = 1 from the (indented) config line left $n snapshots"
ok "repository, password_file and keep_last from the file drive init, backup, forget"

say table
run 0 "$PF" config keys
awk '{print $1}' "$W/out.txt" | sort >"$W/keys.txt"
grep -rhoE 'pf_config_(get|true)\("[a-z0-9_]+"\)' "$SRC/src" | sed -E 's/.*\("([^"]+)"\)/\1/' |
    sort -u >"$W/read.txt"
[ -s "$W/read.txt" ] || fail "found no pf_config_get calls in $SRC/src"
missing=$(comm -23 "$W/read.txt" "$W/keys.txt")
[ -z "$missing" ] || fail "keys read by the code but not in the table of src/cli/conf.c: $missing"
ok "all $(wc -l <"$W/read.txt") keys read with a literal name are in the table"

echo "config: all passed"

#!/usr/bin/env bash
# --json, schema version 1 (docs/JSON.md), against a local repository (seconds): every
# command's output is one JSON document that tests/lib/check_json.py holds to its section
# of JSON.md (documented fields present with their types, every time RFC 3339 with a zone,
# no decimals but in durations, at most 3), plus what each must say:
#   snapshots  time is UTC and the instant of time_local (backup under TZ=Europe/Berlin)
#   ls         one array streamed one entry per line; mtime is the file's, to the ns; a
#              name that is not UTF-8 comes back byte for byte (diff's too)
#   find       streamed like ls, file times to the ns, exact names; no match: [] and the
#              not_found error
#   forget     one object, with --prune's result inside
#   results    init, unlock, key add/passwd/remove/export, upgrade, copy print an object
#   errors     one JSON line last on stderr with the kind of its exit code: no_repository
#              10, auth 12, locked 11, usage 2 (option, arguments, command, value),
#              not_found 13, exists 6, damaged 4 (check still prints its document); the
#              human form is unchanged
. "$PF_SRC/tests/lib/testlib.sh" json

export PERMAFROST_REPO=$W/repo PERMAFROST_PASSWORD=json-test
DOC=$SRC/docs/JSON.md
check() { python3 "$SRC/tests/lib/check_json.py" "$DOC" "$@" || fail "$1: output does not follow JSON.md"; }
# want_error RC KIND CMD...: CMD exits RC with that error object last on stderr.
want_error() {
    local rc=$1 kind=$2
    shift 2
    run "$rc" "$@"
    check --error "$W/err.txt" "$kind" "$rc"
    [ ! -s "$W/out.txt" ] || fail "$*: failed, yet printed on stdout"
}

mkdir -p "$W/src/sub"
echo one >"$W/src/a"
echo two >"$W/src/sub/b"
ln -s a "$W/src/link"
printf 'raw\n' >"$W/src/$(printf 'caf\xe9')" # Latin-1: not UTF-8
touch -d '2020-01-02 03:04:05.123456789 UTC' "$W/src/a"

say "init, backup, snapshots"
run 0 "$PF" --json init
check init "$W/out.txt"
want_error 6 exists "$PF" --json init
TZ=Europe/Berlin run 0 "$PF" --json backup --time "2026-01-15 08:30:00" "$W/src"
check backup "$W/out.txt"
python3 - "$W/out.txt" <<'PY' || fail "backup --json: time"
import json, sys
s = json.load(open(sys.argv[1]))
# 08:30 in Berlin in January is 07:30 UTC; the deprecated time_local keeps the wall clock.
assert s["time"] == "2026-01-15T07:30:00Z" and s["tz_offset"] == 3600, s
assert s["time_local"] == "2026-01-15 08:30:00 +0100", s
PY
echo three >"$W/src/c"
printf 'new\n' >"$W/src/$(printf 'na\xefve')" # not UTF-8 either, for diff
run 0 "$PF" --json backup "$W/src"
check backup "$W/out.txt"
run 0 "$PF" --json snapshots
check snapshots "$W/out.txt"
read -r first second < <(python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(open(sys.argv[1]))))' "$W/out.txt")
ok "init, backup and snapshots follow JSON.md; time is UTC"

say "ls streams one array"
run 0 "$PF" --json ls "$second"
check ls "$W/out.txt"
python3 - "$W/out.txt" "$W/src" <<'PY' || fail "ls --json"
import json, os, sys
raw = open(sys.argv[1], "rb").read().decode("utf-8")  # JSON text is UTF-8: other bytes are escaped
lines = raw.splitlines()
entries = json.loads(raw)
# Streamed: "[", one entry per line, "]" (a reader can also go line by line).
assert lines[0] == "[" and lines[-1] == "]" and len(lines) == len(entries) + 2, lines[:3]
for l, e in zip(lines[1:-1], entries):
    assert json.loads(l.rstrip(",")) == e, l
by = {e["path"]: e for e in entries}
src = sys.argv[2]
for name in os.listdir(os.fsencode(src)):
    p = "/src/" + os.fsdecode(name)
    assert p in by, (p, sorted(by))
    st = os.lstat(os.path.join(os.fsencode(src), name))
    e = by[p]
    # mtime to the nanosecond, as the deprecated mtime_ns says too
    sec, _, frac = e["mtime"][:-1].partition(".")
    assert e["mtime_ns"] == str(st.st_mtime_ns), e
    import calendar, time
    whole = calendar.timegm(time.strptime(sec, "%Y-%m-%dT%H:%M:%S"))
    assert whole * 10**9 + int((frac + "000000000")[:9]) == st.st_mtime_ns, e
a = by["/src/a"]
assert a["mtime"] == "2020-01-02T03:04:05.123456789Z" and a["size"] == 4, a
assert by["/src/link"]["link"] == "a" and by["/src/link"]["type"] == "symlink"
PY
run 0 "$PF" --json ls "$second" /src/sub/b
check ls "$W/out.txt"
[ "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$W/out.txt")" = 1 ] ||
    fail "ls --json SNAPSHOT FILE lists one entry"
want_error 13 not_found "$PF" --json ls "$second" /src/nothing-here
ok "ls prints one valid array, line by line, with exact names and times"

say "diff, restore, check, status"
run 0 "$PF" --json diff "$first" "$second"
check diff "$W/out.txt"
has "$W/out.txt" '"change":"+","path":"src/c"'
python3 - "$W/out.txt" <<'PY' || fail "diff --json: a name that is not UTF-8"
import json, os, sys
d = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))  # valid UTF-8 JSON
added = [os.fsencode(c["path"]) for c in d["changes"] if c["change"] == "+"]
assert b"src/na\xefve" in added, added
PY
run 0 "$PF" --json restore "$second" --target "$W/restored"
check restore "$W/out.txt"
run 0 "$PF" --json check
check check "$W/out.txt"
run 0 "$PF" --json status
check status "$W/out.txt"
run 0 "$PF" --json stats
check stats "$W/out.txt"
run 0 "$PF" --json find 'src/*'
check find "$W/out.txt"
python3 - "$W/out.txt" "$second" <<'PY' || fail "find --json"
import json, os, sys
hits = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))
mine = {os.fsencode(h["path"]): h for h in hits if h["snapshot"] == sys.argv[2]}
assert b"src/na\xefve" in mine and b"src/caf\xe9" in mine, sorted(mine)
assert mine[b"src/a"]["mtime"] == "2020-01-02T03:04:05.123456789Z", mine[b"src/a"]
PY
run 13 "$PF" --json find 'nothing-like-this*'
check find "$W/out.txt"
check --error "$W/err.txt" not_found 13
ok "diff, restore, check, status, stats and find follow JSON.md"

say "keys"
echo second-pass >"$W/pass2"
run 0 "$PF" --json key add --new-password-file "$W/pass2"
check "key add" "$W/out.txt"
added=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["removed"] is None; print(d["added"])' "$W/out.txt")
run 0 "$PF" --json key list
check "key list" "$W/out.txt"
has "$W/out.txt" "\"id\":\"$added\""
run 0 "$PF" --json key remove "${added:0:12}"
check "key add" "$W/out.txt"
has "$W/out.txt" "\"removed\":\"$added\""
run 0 "$PF" --json key passwd --new-password-file "$W/pass2"
check "key add" "$W/out.txt"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["added"] and d["removed"], d' "$W/out.txt" ||
    fail "key passwd --json names the new and the old key"
export PERMAFROST_PASSWORD=second-pass
run 0 "$PF" key export --paper
cp "$W/out.txt" "$W/sheet.txt"
run 0 "$PF" --json key export --paper
check "key export" "$W/out.txt"
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["sheet"] == open(sys.argv[2]).read()' \
    "$W/out.txt" "$W/sheet.txt" || fail "key export --json: the sheet is not the one printed without --json"
ok "key add, list, remove, passwd and export print objects"

say "forget, prune, copy, upgrade, config"
run 0 "$PF" --json forget --keep-last 1 --dry-run
check forget "$W/out.txt"
run 0 "$PF" --json forget --keep-last 1 --prune
check forget "$W/out.txt"
python3 - "$W/out.txt" "$first" <<'PY' || fail "forget --json --prune"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["removed"] == 1 and d["kept"] == 1 and not d["dry_run"], d
assert [s["id"] for s in d["snapshots"] if not s["keep"]] == [sys.argv[2]], d
assert isinstance(d["prune"], dict) and d["prune"]["packs_total"] >= 1, d
PY
run 0 "$PF" --json prune --dry-run
check prune "$W/out.txt"
PERMAFROST_PASSWORD=copy-pass run 0 "$PF" --repo "$W/copy" -q init
PERMAFROST_TO_PASSWORD=copy-pass run 0 "$PF" --json copy --to "$W/copy"
check copy "$W/out.txt"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["copied"] == 1 and d["snapshots"][0]["from"] == sys.argv[2], d' \
    "$W/out.txt" "$second" || fail "copy --json lists the copy"
run 0 "$PF" --json upgrade
check upgrade "$W/out.txt"
echo "keep_daily = 7" >"$W/good.conf"
run 0 "$PF" --json config check "$W/good.conf"
check "config check" "$W/out.txt"
echo "keep_daly = 7" >"$W/bad.conf"
run 2 "$PF" --json config check "$W/bad.conf"
check "config check" "$W/out.txt"
check --error "$W/err.txt" usage 2
run 0 "$PF" --json config keys
check "config keys" "$W/out.txt"
ok "forget (one document with the prune), prune, copy, upgrade and config follow JSON.md"

say "locks: locked (11) as JSON, unlock reports what it removed"
mkdir -p "$W/hold"
truncate -s 64G "$W/hold/zeros"
"$PF" backup "$W/hold" >"$W/holder.txt" 2>&1 &
HPID=$!
on_exit "kill -9 $HPID 2>/dev/null; wait $HPID 2>/dev/null"
lock_there() { [ -n "$(find "$PERMAFROST_REPO/locks" -type f -regextype posix-extended -regex '.*/[0-9a-f]{64}')" ]; }
wait_for 30 lock_there
kill -STOP "$HPID"
PERMAFROST_LOCK_WAIT=0 want_error 11 locked "$PF" --json prune
kill -9 "$HPID"
wait "$HPID" 2>/dev/null || true
run 0 "$PF" --json unlock
check unlock "$W/out.txt"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); r=d["removed"]; assert len(r) == 1 and r[0]["stale"] and r[0]["command"] == "backup", d' \
    "$W/out.txt" || fail "unlock --json names the stale lock it removed"
run 0 "$PF" --json unlock
has "$W/out.txt" '"removed":[]'
ok "a held lock is kind locked; unlock --json lists the removed lock"

say "errors"
want_error 10 no_repository "$PF" --json --repo "$W/none" snapshots
PERMAFROST_PASSWORD=wrong want_error 12 auth "$PF" --json snapshots
want_error 2 usage "$PF" --json ls --no-such-option latest
want_error 2 usage "$PF" --json ls
want_error 2 usage "$PF" --json no-such-command
want_error 2 usage "$PF" --json prune --max-unused 300
want_error 2 usage "$PF" --json forget --keep-last x
want_error 2 usage "$PF" --json key frobnicate
# backup and restore parse their own options (both forms), and so do the global options.
want_error 2 usage "$PF" --json backup --no-such-option x
want_error 2 usage "$PF" --json backup
want_error 2 usage "$PF" --json backup --live "$W" extra
want_error 2 usage "$PF" --json backup --live "$W" --no-such-option
want_error 2 usage "$PF" --json restore latest
want_error 2 usage "$PF" --json restore --no-such-option
want_error 2 usage "$PF" --json restore latest --live "$W" --media-root relative
want_error 2 usage "$PF" --json --connections 0 snapshots
want_error 2 usage "$PF" --json backup "$W" --ping ftp://x
want_error 13 not_found "$PF" --json ls 0000000000
# damaged (4): check prints its document, and stderr ends with the error.
pack=$(find "$PERMAFROST_REPO/data" -type f | head -n 1)
printf 'XXXXXXXX' | dd of="$pack" bs=1 seek=100 conv=notrunc status=none
run 4 "$PF" --json check --read-data
check check "$W/out.txt"
check --error "$W/err.txt" damaged 4
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert not d["healthy"] and d["errors"] > 0 and d["problems"], d' \
    "$W/out.txt" || fail "check --json: the damage is in the document"
# The human form is the line it always was, and no JSON.
run 13 "$PF" ls 0000000000
has "$W/err.txt" "permafrost: no snapshot 0000000000"
lacks "$W/err.txt" '{"error"'
run 2 "$PF" ls --no-such-option latest
has "$W/err.txt" "usage: permafrost ls"
lacks "$W/err.txt" '{"error"'
run 2 "$PF" backup --no-such-option x
has "$W/err.txt" "usage: permafrost backup"
lacks "$W/err.txt" '{"error"'
ok "every error kind that is cheap to cause is one JSON line with its exit code"

#!/usr/bin/env bash
# Restore drills through the real CLI, against the harness's Mastodon-shaped server:
#   proves   backup --live, then drill: restored into scratch servers, every proof ok
#            (secrets, row counts, schema migrations, media byte-identical, Redis keys),
#            the live server untouched (same digest), nothing left in the scratch folder,
#            and status shows the drill with its restore time
#   damaged  a pack of the snapshot damaged on disk: the drill fails, non-zero, naming the
#            damage, and status shows the failed drill
#   usage    --sample 0 is a usage error; no whole-server snapshot is a clear error (13)
#   progress the first backup --live knows its total (the database's recorded sizes)
. "$PF_SRC/tests/lib/testlib.sh" drill
. "$SRC/tests/harness/mastodon.sh"
chmod 755 "$W"
export PERMAFROST_PASSWORD=drill-test-passphrase PERMAFROST_CACHE_DIR=$W/cache
export PERMAFROST_REPO=$W/repo
# Unix socket paths are short (108 bytes): the scratch servers go in a short folder.
S=$(mktemp -d /tmp/pfd.XXXXXX)
on_exit "rm -rf '$S'"

say usage
run 0 "$PF" -q init
run 2 "$PF" drill --sample 0
has "$W/err.txt" "--sample wants a number from 1 to 100000"
run 13 "$PF" drill --tmp "$S"
has "$W/err.txt" "drill"

say proves
mastodon_up "$W/old" || fail "cannot start the source server"
. "$W/old/mastodon.env"
# The first backup, on a terminal (script(1) gives one): with no parent to measure against,
# its progress still has a total and a percentage (the database's recorded sizes).
script -qec "$PF backup --live $LIVE" /dev/null >"$W/tty.txt" 2>&1 ||
    fail "backup --live on a terminal failed: $(tr '\r' '\n' <"$W/tty.txt" | tail -5)"
# The total is known once the dump's snapshot is taken; whether a progress line falls after
# that depends on timing, the line that says so does not.
grep -aqE 'a first backup: about [0-9.]+ MiB to read' "$W/tty.txt" ||
    fail "a first backup has no total: $(tr '\r' '\n' <"$W/tty.txt" | tail -8)"
if [ "$(id -u)" = 0 ]; then
    run 2 "$PF" drill --tmp "$S"
    has "$W/err.txt" "is closed to other users"
fi
chmod 755 "$S"
mastodon_digest "$W/old" >"$W/before.txt"
run 0 "$PF" drill --tmp "$S"
for proof in "ok   secrets" "ok   row counts" "ok   schema migrations" "ok   media sample" "ok   redis"; do
    has "$W/out.txt" "$proof"
done
has "$W/out.txt" "accounts 60"
has "$W/out.txt" "3 applied, newest 20240301000000"
has "$W/out.txt" "files byte-identical to the snapshot"
has "$W/out.txt" "verdict: the backup restores"
[ -z "$(ls -A "$S")" ] || fail "the drill left $(ls -A "$S") behind"
mastodon_digest "$W/old" >"$W/after.txt"
cmp -s "$W/before.txt" "$W/after.txt" || fail "the drill changed the live server"
run 0 "$PF" status
has "$W/out.txt" "last drill"
grep -q "last drill .*ok, took" "$W/out.txt" || fail "status does not show the drill: $(cat "$W/out.txt")"
run 0 "$PF" drill --tmp "$S" --json --sample 3
python3 "$SRC/tests/lib/check_json.py" "$SRC/docs/JSON.md" drill "$W/out.txt" || fail "drill --json does not follow docs/JSON.md"
python3 - "$W/out.txt" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"] is True and d["restore_seconds"] > 0, d
assert {c["name"] for c in d["checks"]} >= {"secrets", "row counts", "schema migrations", "media sample", "redis"}, d
assert all(c["ok"] for c in d["checks"]), d
PY
ok "a drill restores into scratch servers and proves it"

say damaged
# Damage every pack of the repository in the middle: whatever the drill reads first fails
# authentication.
for p in "$W"/repo/data/*/*; do
    size=$(stat -c %s "$p")
    printf 'XXXXXXXX' | dd of="$p" bs=1 seek=$((size / 2)) conv=notrunc status=none
done
rm -rf "$W/cache"
rc=0
"$PF" drill --tmp "$S" >"$W/out.txt" 2>"$W/err.txt" || rc=$?
[ "$rc" != 0 ] || fail "a drill of a damaged snapshot passed: $(cat "$W/out.txt")"
grep -qiE "authenticat|corrupt|damaged|FAIL" "$W/out.txt" "$W/err.txt" ||
    fail "the drill did not name the damage: $(cat "$W/out.txt" "$W/err.txt")"
[ -z "$(ls -A "$S")" ] || fail "the failed drill left $(ls -A "$S") behind"
run 0 "$PF" status
grep -q "last drill .*FAILED" "$W/out.txt" || fail "status does not show the failed drill: $(cat "$W/out.txt")"
ok "a damaged snapshot fails the drill (exit $rc)"

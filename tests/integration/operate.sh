#!/usr/bin/env bash
# Running it every day, through the real CLI (a local repository and a loopback HTTP
# recorder, seconds):
#   status    per host the newest backup, "never" for check and drill, --json agrees;
#             after a check, its time and result
#   diff      + - M U lines between two plain backups, the summary, --json
#   stats     restore bytes of both snapshots, distinct blobs counted once; find by name and
#             by path, newest snapshot first, exit 13 when nothing matches
#   progress  restore on a terminal (script(1)) shows a total and a percentage
#   ping      --ping URL: /start then URL on success; /start then /fail with the error in
#             the body on failure; a ping server that answers 500 or is not there warns
#             and never changes the job's exit code
#   notify    notify_url gets a failure with a Title naming job, host and exit code
#   metrics   metrics_file after a good backup and a failed one: last success kept, exit
#             code updated, check's samples beside backup's, no temporary file left
#   journal   with stderr on the journal (JOURNAL_STREAM matches), lines carry <N>
#             priorities; with it set but stderr elsewhere, plain lines
. "$PF_SRC/tests/lib/testlib.sh" operate

export PERMAFROST_REPO=$W/repo PERMAFROST_PASSWORD=operate-test
mkdir -p "$W/src/sub"
echo one >"$W/src/a"
echo two >"$W/src/sub/b"
run 0 "$PF" -q init

say status
run 0 "$PF" -q backup "$W/src"
run 0 "$PF" status
has "$W/out.txt" "host $(hostname)"
has "$W/out.txt" "last whole-server backup none: run \`permafrost backup --live\`"
has "$W/out.txt" "last check               never"
has "$W/out.txt" "locks: none"
run 0 "$PF" status --json
python3 - "$W/out.txt" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
assert st["version"] == 1, st
h = st["hosts"][0]
assert h["latest_server"] is None and h["newest"]["kind"] == "paths", h
assert h["newest"]["time"].endswith("Z") and h["last_check"] is None, h
assert st["repository"]["snapshots"] == 1 and st["repository"]["bytes"] > 0, st
PY
ok "status says what is there and what never ran"

say diff
echo three >"$W/src/c"
echo ONE >>"$W/src/a"
rm "$W/src/sub/b"
run 0 "$PF" -q backup "$W/src"
run 0 "$PF" snapshots --json
read -r first second < <(python3 -c 'import json,sys; print(" ".join(s["id"][:12] for s in json.load(open(sys.argv[1]))))' "$W/out.txt")
run 0 "$PF" diff "$first" "$second"
has "$W/out.txt" "M src/a"
has "$W/out.txt" "+ src/c"
has "$W/out.txt" "- src/sub/b"
has "$W/out.txt" "1 added, 1 removed, 1 modified"
lacks "$W/out.txt" "sub/b/"
run 0 "$PF" diff "$first" "$first"
has "$W/out.txt" "0 added, 0 removed, 0 modified"
run 0 "$PF" diff "$first" "$second" --json
python3 - "$W/out.txt" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
kinds = {(c["change"], c["path"]) for c in d["changes"]}
assert ("+", "src/c") in kinds and ("-", "src/sub/b") in kinds and ("M", "src/a") in kinds, kinds
assert d["summary"]["added"] == 1 and d["summary"]["bytes_delta"] == 4 + 6 - 4, d["summary"]
PY
run 13 "$PF" diff "$first" ffffffffffff
ok "diff lists what changed"

say stats-find
run 0 "$PF" stats --json
python3 - "$W/out.txt" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
t = d["total"]
# Two snapshots: a, sub/b (4 + 4 bytes), then a, c (8 + 6): restore bytes add up; the
# distinct contents are four small files, one blob each.
assert d["snapshots"] == 2 and t["restore_bytes"] == 4 + 4 + 8 + 6, t
assert t["blobs"] == 4 and t["raw_bytes"] == 4 + 4 + 8 + 6, t
assert t["stored_bytes"] > 0 and t["trees"] >= 4, t
PY
run 0 "$PF" stats "$second"
has "$W/out.txt" "1 snapshot"
run 0 "$PF" find 'b'
has "$W/out.txt" "src/sub/b"
[ "$(wc -l <"$W/out.txt")" = 1 ] || fail "find b: only the first snapshot holds src/sub/b"
run 0 "$PF" find 'src/*' --json
python3 - "$W/out.txt" "$first" "$second" <<'PY'
import json, sys
hits = json.load(open(sys.argv[1]))
by = {}
for h in hits:
    by.setdefault(h["snapshot"][:12], set()).add(h["path"])
    assert h["mtime"].endswith("Z"), h
assert by[sys.argv[2]] >= {"src/a", "src/sub", "src/sub/b"}, by
assert "src/c" in by[sys.argv[3]] and "src/sub/b" not in by[sys.argv[3]], by
assert hits[0]["snapshot"].startswith(sys.argv[3]), "newest first"
PY
run 13 "$PF" find 'nothing-like-this*'
has "$W/err.txt" "0 matches in 2 snapshots"
ok "stats count distinct data; find says which snapshots hold a path"

say progress
# On a terminal (script(1) gives one), a restore of a whole snapshot shows its total and
# a percentage.
script -qec "$PF restore latest --target $W/restored" /dev/null >"$W/tty.txt" 2>&1 ||
    fail "restore on a terminal failed: $(cat "$W/tty.txt")"
grep -aqE ' of [0-9.]+ [KMG]?i?B \([0-9]+%\)' "$W/tty.txt" ||
    fail "no total and percentage in the restore's progress: $(tr '\r' '\n' <"$W/tty.txt")"
cmp "$W/src/c" "$W/restored/src/c" || fail "restored src/c differs"
ok "a restore on a terminal shows its total and a percentage"
# A first backup of paths has no parent snapshot: its total comes from a walk beside it.
mkdir -p "$W/first/sub"
head -c 300000 /dev/urandom >"$W/first/sub/big"
echo small >"$W/first/small"
script -qec "$PF backup $W/first" /dev/null >"$W/tty.txt" 2>&1 ||
    fail "a first backup on a terminal failed: $(cat "$W/tty.txt")"
grep -aqE ' of 29[0-9.]+ KiB \([0-9]+%\)' "$W/tty.txt" ||
    fail "no total in a first backup's progress: $(tr '\r' '\n' <"$W/tty.txt")"
ok "a first backup of paths on a terminal shows its total and a percentage"

say ping
python3 "$SRC/tests/harness/http_recorder.py" "$W/port" "$W/http.log" &
on_exit "kill $!"
wait_for 10 test -s "$W/port"
URL=http://127.0.0.1:$(cat "$W/port")
run 0 "$PF" -q backup "$W/src" --ping "$URL/ping/good"
python3 - "$W/http.log" <<'PY'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
paths = [r["path"] for r in reqs]
assert paths == ["/ping/good/start", "/ping/good"], paths
assert all(r["method"] == "POST" for r in reqs), reqs
PY
: >"$W/http.log"
run 10 "$PF" -q --repo "$W/nothing-here" backup "$W/src" --ping "$URL/ping/bad"
python3 - "$W/http.log" <<'PY'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
assert [r["path"] for r in reqs] == ["/ping/bad/start", "/ping/bad/fail"], reqs
assert "nothing-here" in reqs[1]["body"], reqs[1]
PY
# A ping server that fails, or is not there: a warning, and the job's own exit code.
run 0 "$PF" -q backup "$W/src" --ping "$URL/status-500"
has "$W/err.txt" "permafrost: warning: ping: $URL/status-500/start: the server answered HTTP 500"
run 0 "$PF" -q backup "$W/src" --ping "http://127.0.0.1:1/nobody"
has "$W/err.txt" "permafrost: warning: ping: http://127.0.0.1:1/nobody/start"
run 2 "$PF" -q backup "$W/src" --ping "ftp://example/x"
has "$W/err.txt" "not an http:// or https:// URL"
run 2 "$PF" snapshots --ping "$URL/x"
has "$W/err.txt" "--ping is for jobs"
ok "pings: start, success, fail with the log's tail; failures of the ping server only warn"

say notify
: >"$W/http.log"
cat >"$W/notify.conf" <<EOF2
notify_url = $URL/notify
metrics_file = $W/metrics/permafrost.prom
EOF2
mkdir "$W/metrics"
export PERMAFROST_CONFIG="$W/notify.conf"
run 0 "$PF" -q backup "$W/src"
test ! -s "$W/http.log" || fail "notify_url heard of a job that succeeded"
run 10 "$PF" -q --repo "$W/nothing-here" backup "$W/src"
python3 - "$W/http.log" "$(hostname)" <<'PY'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
assert len(reqs) == 1 and reqs[0]["path"] == "/notify", reqs
t = reqs[0]["title"]
assert t == "permafrost backup FAILED on %s (exit 10)" % sys.argv[2], t
assert "nothing-here" in reqs[0]["body"], reqs[0]
PY
ok "notify_url hears of a failed job"

say metrics
M=$W/metrics/permafrost.prom
has "$M" 'permafrost_last_exit_code{command="backup"} 10'
has "$M" '# TYPE permafrost_last_success_timestamp_seconds gauge'
last=$(sed -n 's/^permafrost_last_success_timestamp_seconds{command="backup"} \([0-9.]*\)$/\1/p' "$M")
[ -n "$last" ] || fail "the last success of backup went when a backup failed"
python3 -c 'import sys, time; t = float(sys.argv[1]); assert abs(time.time() - t) < 300, t' "$last" ||
    fail "last success time $last is not the time of day"
run 0 "$PF" -q check
has "$M" 'permafrost_last_exit_code{command="check"} 0'
has "$M" 'permafrost_last_exit_code{command="backup"} 10'
run 0 "$PF" -q backup "$W/src"
has "$M" 'permafrost_last_exit_code{command="backup"} 0'
grep -qE '^permafrost_last_files\{command="backup"\} [1-9]' "$M" || fail "no file count for the backup in $M"
grep -qE '^permafrost_last_read_bytes\{command="backup"\} [0-9]' "$M" || fail "no bytes read in $M"
run 0 "$PF" -q --json prune
has "$W/out.txt" '"run_records_removed":0'
has "$M" 'permafrost_last_exit_code{command="prune"} 0'
[ "$(ls -A "$W/metrics")" = permafrost.prom ] || fail "a temporary file was left: $(ls -A "$W/metrics")"
# node_exporter's parser: every sample line is NAME{LABELS} VALUE.
grep -v '^#' "$M" | grep -vqE '^[a-z_]+(\{[a-z]+="[^"]*"(,[a-z]+="[^"]*")*\})? [0-9.e+-]+$' &&
    fail "a line of $M is not a Prometheus sample"
run 0 "$PF" status
has "$W/out.txt" "s ago)  ok, took"
export PERMAFROST_CONFIG="$W/empty.conf"
ok "metrics_file keeps every job's samples"

say journal
"$PF" -q --repo "$W/nothing-here" snapshots 2>"$W/journal.txt" || true
lacks "$W/journal.txt" "<3>"
# What systemd does for a unit whose stderr is the journal: JOURNAL_STREAM=DEV:INODE of it.
exec 3>"$W/journal.txt"
stream=$(stat -c '%d:%i' "$W/journal.txt")
JOURNAL_STREAM=$stream "$PF" -q --repo "$W/nothing-here" snapshots 2>&3 || true
exec 3>&-
has "$W/journal.txt" "<3>permafrost: "
JOURNAL_STREAM=$stream "$PF" -q --repo "$W/nothing-here" snapshots 2>"$W/elsewhere.txt" || true
lacks "$W/elsewhere.txt" "<3>"
ok "journald priorities only when stderr is the journal"

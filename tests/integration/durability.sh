#!/usr/bin/env bash
# Durability of a backup into a local repository: packs are written without a flush each
# and made durable in one batch before the index file that names them, the index before
# the snapshot (docs/FORMAT.md, "Crash consistency").
#   order     a trace (strace -y) of a whole backup: no pack is flushed on its own; every
#             pack and the directory naming it are flushed after its rename and before the
#             index file is renamed into place; the index before the snapshot
#   killed    the backup killed (SIGKILL injected by strace, no timing) at the first flush
#             of the batch (every pack written, none flushed, no index) and just before the
#             index is written (the batch flushed): no index names a missing pack, check
#             and check --read-data pass, no snapshot; the next backup reuses the packs and
#             its snapshot restores the files
#   damaged   a pack left by a killed backup is then damaged in the middle (what a crash of
#             the machine can leave of an unflushed file, its header intact): the next
#             backup does not reuse it but stores its blobs again, no index names it, prune
#             removes it, and check --read-data passes
# Needs strace and python3 (scripts/install-deps.sh).
. "$PF_SRC/tests/lib/testlib.sh" durability

command -v strace >/dev/null || fail "strace is missing (scripts/install-deps.sh installs it)"
export PERMAFROST_PASSWORD=durability-test-passphrase
LIB=$PF_SRC/tests/lib

T=$W/src
mkdir -p "$T/small"
for i in 1 2 3 4; do head -c 10M /dev/urandom >"$T/f$i"; done
for i in $(seq 1 50); do printf 'small file %d\n' "$i" >"$T/small/s$i"; done
DATA=$((4 * 10 * 1048576))

pf() { "$PF" --repo "$REPO" "$@"; }
# LeakSanitizer cannot run under ptrace: a sanitizer build is traced with leak checks off
# (the same commands run untraced here too, with them on).
traced() { ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" strace -f -qq "$@"; }
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
packs_in() { find "$1/data" -type f -regextype posix-extended -regex '.*/[0-9a-f]{64}' 2>/dev/null | wc -l; }
count_in() { find "$1/$2" -type f 2>/dev/null | grep -vc '\.tmp-' || true; }

say "order: a trace of a whole backup"
REPO=$W/order
run 0 pf init
run 0 traced -y -e trace=fsync,rename -o "$W/trace.txt" "$PF" --repo "$REPO" backup "$T"
python3 - "$W/trace.txt" "$REPO" <<'EOF'
import os, re, sys
trace, repo = sys.argv[1], os.path.realpath(sys.argv[2])
renames, fsyncs = [], []  # (line number, path)
for n, line in enumerate(open(trace)):
    m = re.search(r'rename\("([^"]+)", "([^"]+)"\) = 0', line)
    if m:
        renames.append((n, os.path.realpath(m.group(2)), m.group(1)))
    m = re.search(r'fsync\(\d+<([^>]+)>\) = 0', line)
    if m:
        fsyncs.append((n, m.group(1)))
packs = [(n, p) for n, p, _ in renames if re.search(r'/data/[0-9a-f]{2}/[0-9a-f]{64}$', p)]
index = [(n, p) for n, p, _ in renames if '/index/' in p]
snaps = [(n, p) for n, p, _ in renames if '/snapshots/' in p]
assert len(packs) >= 2, f"only {len(packs)} packs in the trace"
assert len(index) == 1 and len(snaps) == 1, (index, snaps)
ni, ns = index[0][0], snaps[0][0]
for n, p in fsyncs:
    assert '.tmp-' not in p or '/data/' not in p, f"a pack flushed on its own: {p}"
for n, p in packs:
    after = [m for m, q in fsyncs if q == p and n < m < ni]
    assert after, f"pack {p} not flushed between its rename and the index"
    d = os.path.dirname(p)
    assert [m for m, q in fsyncs if q == d and n < m < ni], f"directory {d} not flushed before the index"
itmp = [src for n, p, src in renames if '/index/' in p][0]
assert [m for m, q in fsyncs if os.path.realpath(q) == os.path.realpath(itmp) and m < ni], "index file not flushed before its rename"
idir = os.path.dirname(index[0][1])
assert [m for m, q in fsyncs if q == idir and ni < m < ns], "index directory not flushed before the snapshot"
assert ni < ns
print(f"order ok: {len(packs)} packs flushed in one batch before the index, the index before the snapshot")
EOF

# The main thread's flushes before the batch (the lock's) come before the first pack's
# rename; the batch's first flush is the next one of that thread.
before=$(python3 - "$W/trace.txt" <<'EOF'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
main = lines[0].split()[0]
n = 0
for line in lines:
    if re.search(r'rename\(.*/data/[0-9a-f]{2}/[0-9a-f]{64}"\) = 0', line):
        print(n)
        break
    if line.split()[0] == main and 'fsync(' in line:
        n += 1
EOF
)
[ -n "$before" ] || fail "no pack rename in the trace"

# killed_at NAME STRACE-ARGS...: a fresh repository, a backup killed where the arguments say.
killed_at() {
    local name=$1 rc=0
    shift
    REPO=$W/$name
    rm -rf "$REPO" "$W/restore"
    run 0 pf init
    traced -o /dev/null "$@" "$PF" --repo "$REPO" backup "$T" >"$W/kill-out.txt" 2>&1 || rc=$?
    [ $rc = 137 ] || { cat "$W/kill-out.txt" >&2; fail "$name: backup exited $rc, not killed"; }
    [ "$(count_in "$REPO" snapshots)" = 0 ] || fail "$name: a killed backup left a snapshot"
    LEFT=$(packs_in "$REPO")
    [ "$LEFT" -ge 2 ] || fail "$name: only $LEFT packs written before the kill"
}

# every index file names only packs that are there, whole (check --read-data reads them).
consistent_then_resumed() {
    local name=$1 want_index=$2
    [ "$(count_in "$REPO" index)" = "$want_index" ] || fail "$name: $(count_in "$REPO" index) index files, expected $want_index"
    run 0 pf check
    run 0 pf --json backup "$T"
    local stored
    stored=$(jget "$W/out.txt" 'int(d["stats"]["bytes_stored"])')
    echo "  $name: $LEFT packs left by the killed backup; the next one stored $stored bytes"
    [ "$stored" -lt $((DATA / 10)) ] || fail "$name: the next backup stored $stored bytes again"
    run 0 pf check --read-data
    run 0 pf restore latest --target "$W/restore"
    python3 "$LIB/compare_trees.py" "$T" "$W/restore/src" >"$W/cmp.txt" 2>&1 || { head -20 "$W/cmp.txt" >&2; fail "$name: restore differs"; }
}

say "killed at the batch's first flush (packs written, none flushed, no index)"
killed_at batch -e trace=fsync -e inject=fsync:signal=KILL:when=$((before + 1))
consistent_then_resumed batch 0

say "killed just before the index is written (the batch flushed)"
killed_at index -P "$W/index/index" -e inject=%%stat:signal=KILL
consistent_then_resumed index 0

say "damaged: a pack left by a killed backup, damaged in its middle"
killed_at damaged -e trace=fsync -e inject=fsync:signal=KILL:when=$((before + 1))
victim=$(find "$REPO/data" -type f -regextype posix-extended -regex '.*/[0-9a-f]{64}' | head -1)
python3 - "$victim" <<'EOF'
import os, sys
p = sys.argv[1]
os.chmod(p, 0o600)
with open(p, "r+b") as f:
    f.seek(f.seek(0, 2) // 3)
    f.write(bytes(4096))  # a block of zeros, as an unwritten block reads after a crash
EOF
run 0 pf --json backup "$T"
stored=$(jget "$W/out.txt" 'int(d["stats"]["bytes_stored"])')
echo "  the next backup stored $stored bytes (the damaged pack's blobs again)"
# A reused pack would make it store (almost) nothing, as after the other kills; stored again,
# its blobs are about its size (which varies: which packs the kill leaves depends on timing).
victim_bytes=$(stat -c %s "$victim")
[ "$stored" -ge $((victim_bytes / 2)) ] ||
    fail "the damaged pack was reused (stored $stored bytes, the pack has $victim_bytes)"
# It is in no index (check names it so), and check --read-data tells it is damaged until
# prune removes it.
run 0 pf -v check
has "$W/err.txt" "$(basename "$victim"): not in any index"
run 4 pf check --read-data
has "$W/err.txt" "$(basename "$victim"): damaged"
run 0 pf prune
[ ! -e "$victim" ] || fail "prune left the damaged pack"
run 0 pf check --read-data
run 0 pf restore latest --target "$W/restore"
python3 "$LIB/compare_trees.py" "$T" "$W/restore/src" >"$W/cmp.txt" 2>&1 || { head -20 "$W/cmp.txt" >&2; fail "damaged: restore differs"; }
ok "durability: ordered, killed twice and resumed, a damaged leftover not reused"

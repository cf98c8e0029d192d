#!/usr/bin/env bash
# The engine end to end, on local repositories: files in, the same files out.
#   roundtrip    an odd tree (names of any bytes, deep paths, holes, links, modes, owners,
#                nanosecond times from 1901 to 2262, fifo, socket) backed up, restored and
#                compared (with --keep-special); without it, no FIFO, device or setuid bit
#   owners       (root) owners and groups by name: users recreated with other ids between
#                backup and restore, a user gone, --numeric-owner
#   media        restore --live --only secrets,media (no servers needed): pre-1970 times
#                exact, no FIFO, setuid cleared, symlinks pointing outside not created
#   planted      (root) a local user who owns part of the target plants symlinks where
#                the restore creates a directory, a file, a symlink and a FIFO: none is
#                followed, the file outside keeps its mode, owner and times
#   incremental  change / add / delete / touch, then a second backup reads only what changed
#   kill         kill -9 during a backup at several moments: check passes, no snapshot,
#                the next backup reuses what was stored
#   corrupt      one flipped byte in a pack, an index, a snapshot, a key, the config
#   badinput     wrong passphrase, no repository, second init, unknown snapshot,
#                an unreadable source file, no passphrase and no terminal
# ENGINE_PARTS="roundtrip kill" runs some parts only; ENGINE_KILL_MB (300) sizes the tree
# of the kill part, ENGINE_KILL_AT="0.2 0.5" overrides its moments (seconds);
# ENGINE_LENIENT_JSON=1 accepts `ls --json` lines that are not UTF-8.
# Needs python3; owners, setuid of other users and devices are tested when run as root.
set -eEuo pipefail
trap 'echo "FAIL: line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR

PF=${PERMAFROST:-$PWD/permafrost}
LIB=${PF_TESTLIB:-$(cd "$(dirname "$0")/../lib" && pwd)}
PARTS=${ENGINE_PARTS:-roundtrip incremental owners media planted kill corrupt badinput}
KILL_MB=${ENGINE_KILL_MB:-300}

W=$(mktemp -d "${TMPDIR:-/tmp}/pf-engine.XXXXXX")
chmod 755 "$W" # the unreadable-file test runs permafrost as nobody in here
BG_PIDS=()
cleanup() {
    for p in "${BG_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    chmod -R u+rwx "$W" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

export PERMAFROST_PASSWORD=engine-test-passphrase
unset PERMAFROST_PASSWORD_FILE PERMAFROST_REPO PERMAFROST_HOST
: >"$W/empty.conf"
export PERMAFROST_CONFIG="$W/empty.conf" # nothing from /etc/permafrost.conf
ROOT=0
[ "$(id -u)" = 0 ] && ROOT=1

say() { echo "== $*"; }
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
show_cmd() {
    local s
    s=$(printf '%q ' "$@")
    echo "${s:0:600}"
}

# run RC CMD...: runs CMD with stdout in $W/out.txt and stderr in $W/err.txt, and fails the
# test unless it exits with RC ("any" takes every code a process can exit with by itself,
# "nonzero" every failure that is not a crash).
run() {
    local want=$1 rc=0
    shift
    "$@" >"$W/out.txt" 2>"$W/err.txt" || rc=$?
    local ok=0
    case "$want" in
    any) if [ $rc -lt 128 ]; then ok=1; fi ;;
    nonzero) if [ $rc -ne 0 ] && [ $rc -lt 128 ]; then ok=1; fi ;;
    *) if [ $rc = "$want" ]; then ok=1; fi ;;
    esac
    if [ $ok = 0 ]; then
        echo "command: $(show_cmd "$@")" >&2
        echo "--- stdout (end)" >&2
        tail -c 2000 "$W/out.txt" >&2 || true
        echo "--- stderr (end)" >&2
        tail -c 3000 "$W/err.txt" >&2 || true
        fail "exit code $rc, expected $want"
    fi
    RC=$rc
}

pf() { "$PF" --repo "$REPO" "$@"; }

# JSON value from a file: jget FILE PYTHON-EXPR-ON-d
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

compare() {
    if ! python3 "$LIB/compare_trees.py" "$@" >"$W/cmp.txt" 2>&1; then
        head -n 40 "$W/cmp.txt" >&2
        fail "trees differ: $*"
    fi
}

flip_byte() { # FILE OFFSET (negative: from the end)
    python3 - "$1" "$2" <<'EOF'
import os, sys
path, off = sys.argv[1], int(sys.argv[2])
os.chmod(path, 0o600)
with open(path, "r+b") as f:
    size = f.seek(0, 2)
    if off < 0:
        off += size
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0x55]))
EOF
}

# ---------------------------------------------------------------------------------------
# An odd tree. Everything here must come back exactly.
make_odd_tree() {
    local t=$1
    mkdir -p "$t"
    (
        cd "$t"
        printf 'newline\n' >$'new\nline'
        printf 'tab\n' >$'tab\there'
        printf 'not UTF-8\n' >$'\xff\xfe'
        printf 'latin-1\n' >$'caf\xe9 \x01\x7f'
        printf 'long\n' >"$(printf 'L%.0s' $(seq 255))"
        printf 'dash\n' >-leading-dash
        printf 'spaces\n' >'  spaces in  name '
        printf 'backslash\n' >'back\slash'
        : >empty
        head -c 20M /dev/urandom >big
        truncate -s 100M sparse
        printf 'a few bytes in the middle' | dd of=sparse bs=1 seek=$((50 << 20)) conv=notrunc status=none
        mkdir -p dir/sub/subsub emptydir
        printf 'x\n' >dir/sub/subsub/f
        printf 'y\n' >dir/a
        printf 'z\n' >dir/sub/b
        ln -s big rel-link
        ln -s no/such/target dangling
        ln -s /etc/hostname absolute-link
        ln -s dir dir-link
        printf 'three names, one inode\n' >hard1
        ln hard1 dir/hard2
        ln hard1 dir/sub/hard3
        printf 'setuid\n' >setuid
        printf 'setgid\n' >setgid
        mkdir sticky private
        printf 'in sticky\n' >sticky/in
        printf 'private\n' >private/file
        if [ $ROOT = 1 ]; then
            printf 'owned\n' >owned
            chown 1234:5678 owned
            printf 'nobody\n' >by-nobody
            chown nobody:"$(id -gn nobody)" by-nobody
            ln -s owned owned-link
            chown -h 4321:8765 owned-link
            mkdir owned-dir
            printf 'in owned dir\n' >owned-dir/f
            chown 2222:3333 owned-dir owned-dir/f
            printf 'setuid, not root\n' >setuid-other
            chown 1234:5678 setuid-other
            chmod 6755 setuid-other
            mknod chardev c 1 3 2>/dev/null || true
        fi
        chmod 4755 setuid
        chmod 2755 setgid
        chmod 1777 sticky
        chmod 0700 private
        if [ $ROOT = 1 ]; then # only root can read it back
            printf 'no permissions\n' >mode0000
            chmod 0000 mode0000
        fi
        mkfifo fifo
        python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("sock")'
        # A path longer than PATH_MAX: 40 directories of 120-byte names, one cd at a time.
        local n
        n=$(printf 'd%.0s' $(seq 118))
        for i in $(seq -w 1 40); do
            mkdir "$n$i"
            cd "$n$i"
        done
        printf 'deep\n' >leaf
        touch -d '2011-11-11 11:11:11.111111111' leaf
    )
    touch -d '2020-01-02 03:04:05.123456789' "$t/big" "$t/setuid" "$t/empty"
    touch -h -d '2019-05-06 07:08:09.987654321' "$t/rel-link" "$t/dangling"
    [ $ROOT = 1 ] && touch -h -d '2018-01-01 00:00:00.5' "$t/owned-link"
    # Times before 1970 (negative nanoseconds) and the last one nanoseconds in an i64 hold.
    printf '1901\n' >"$t/old-1901"
    touch -d '1901-12-14 00:00:00.000000001 UTC' "$t/old-1901"
    printf 'half a second before 1970\n' >"$t/old-1969"
    touch -d '1969-12-31 23:59:59.5 UTC' "$t/old-1969"
    mkdir "$t/old-dir"
    touch -d '1969-12-31 23:59:59.5 UTC' "$t/old-dir"
    ln -s old-1969 "$t/old-link"
    touch -h -d '1960-06-01 12:00:00.25 UTC' "$t/old-link"
    printf '2262\n' >"$t/future-2262"
    touch -d '2262-04-11 23:47:16.854775807 UTC' "$t/future-2262"
    # Directory times last, deepest first: creating anything inside changes them.
    touch -d '2001-02-03 04:05:06.000000007' "$t/dir/sub/subsub" "$t/emptydir" "$t/sticky"
    touch -d '2002-02-03 04:05:06.7' "$t/dir/sub" "$t/private"
    touch -d '2003-02-03 04:05:06.123' "$t/dir"
    touch -d '2004-02-03 04:05:06.999999999' "$t"
}

part_roundtrip() {
    say "roundtrip: an odd tree"
    REPO=$W/repo
    make_odd_tree "$W/src"
    run 0 pf init
    run 0 pf --json backup "$W/src"
    cp "$W/out.txt" "$W/backup1.json"
    SNAP1=$(jget "$W/backup1.json" 'd["id"]')
    [ "$(jget "$W/backup1.json" 'd["stats"]["errors"]')" = 0 ] || fail "first backup had errors"

    say "roundtrip: restore and compare"
    run 0 pf restore latest --keep-special --target "$W/r1"
    if grep -q 'cannot set' "$W/err.txt"; then fail "restore warned: $(cat "$W/err.txt")"; fi
    compare --ignore-sockets "$W/src" "$W/r1/src"
    [ "$(stat -c %Y "$W/r1/src/old-1901")" = -2147472000 ] || fail "1901 mtime not restored"
    [ "$(ls -A "$W/r1")" = src ] || fail "restore wrote more than src/: $(ls -A "$W/r1")"
    # the deep file really is there, below PATH_MAX-breaking depth
    local deep
    deep=$(cd "$W/src" && find . -name leaf | sed 's|^\./||')
    [ ${#deep} -gt 4096 ] || fail "deep path only ${#deep} bytes"

    say "roundtrip: without --keep-special: no FIFO or device, setuid/setgid cleared, one warning"
    local setid=2 special=1
    if [ $ROOT = 1 ]; then
        setid=3
        [ -c "$W/src/chardev" ] && special=2
    fi
    run 0 pf restore latest --target "$W/r0"
    [ "$(grep -c 'warning' "$W/err.txt")" = 1 ] || fail "expected one warning: $(cat "$W/err.txt")"
    grep -q "$special device nodes\? or FIFOs\? not created, setuid/setgid cleared on $setid files" \
        "$W/err.txt" || fail "the warning does not count what was left out: $(cat "$W/err.txt")"
    if grep -q 'not restoring' "$W/err.txt"; then fail "names listed without -v"; fi
    grep -q -- '--keep-special keeps them' "$W/err.txt" || fail "the warning does not name --keep-special"
    [ ! -e "$W/r0/src/fifo" ] && [ ! -e "$W/r0/src/chardev" ] || fail "special files restored"
    [ "$(stat -c %a "$W/r0/src/setuid")" = 755 ] || fail "setuid kept: $(stat -c %a "$W/r0/src/setuid")"
    [ "$(stat -c %a "$W/r0/src/setgid")" = 755 ] || fail "setgid kept"
    [ $ROOT = 0 ] || [ "$(stat -c %a "$W/r0/src/setuid-other")" = 755 ] || fail "setuid of another user kept"
    compare --ignore-sockets --exclude fifo --exclude chardev --exclude setuid --exclude setgid \
        --exclude setuid-other "$W/src" "$W/r0/src"
    run 0 pf -v restore latest --target "$W/r0v" src/fifo src/setuid
    grep -q "not restoring FIFO $W/r0v/src/fifo" "$W/err.txt" || fail "-v does not name the FIFO"
    grep -q "clearing setuid/setgid of $W/r0v/src/setuid" "$W/err.txt" || fail "-v does not name the setuid file"
    rm -rf "$W/r0" "$W/r0v"

    say "roundtrip: a time after 2262 is stored as the last one an i64 holds, not wrapped"
    mkdir -p "$W/late/src"
    printf 'late\n' >"$W/late/src/2300"
    touch -d '2300-01-01 00:00:00 UTC' "$W/late/src/2300"
    REPO=$W/late/repo
    run 0 pf init
    run 0 pf backup "$W/late/src"
    run 0 pf restore latest --target "$W/late/r"
    [ "$(TZ=UTC stat -c %y "$W/late/r/src/2300")" = '2262-04-11 23:47:16.854775807 +0000' ] ||
        fail "a 2300 time came back as $(TZ=UTC stat -c %y "$W/late/r/src/2300")"
    rm -rf "$W/late"
    REPO=$W/repo

    say "roundtrip: ls"
    run 0 pf ls latest
    for want in '/src/big' '/src/dir/sub/subsub/f' '/src/rel-link -> big' '/src/fifo' \
        '/src/dangling -> no/such/target' '/src/-leading-dash' '/leaf'; do
        grep -qF -- "$want" "$W/out.txt" || fail "ls does not show $want"
    done
    grep -q '^-rwsr-xr-x .* /src/setuid$' "$W/out.txt" || fail "ls: setuid mode not shown"
    grep -q '^drwxrwxrwt .* /src/sticky$' "$W/out.txt" || fail "ls: sticky mode not shown"
    run 0 pf ls latest src/dir
    grep -qF '/src/dir/sub/hard3' "$W/out.txt" || fail "ls of a subdirectory"
    if grep -qF '/src/big' "$W/out.txt"; then fail "ls src/dir lists outside src/dir"; fi

    TZ=UTC run 0 pf ls latest src/old-1969
    grep -qF '1969-12-31 23:59:59 /src/old-1969' "$W/out.txt" || fail "ls: pre-1970 time: $(cat "$W/out.txt")"

    say "roundtrip: ls --json lists every entry with its exact name"
    run 0 pf --json ls latest
    python3 - "$W/out.txt" "$W/src" <<'EOF' || fail "ls --json"
import json, os, sys
out, top = sys.argv[1], sys.argv[2]
listed = {}
bad_utf8 = []
raw = open(out, "rb").read()
for line in raw.split(b"\n"):  # one entry per line (docs/JSON.md, "ls")
    try:
        line.decode("utf-8")  # JSON text is UTF-8
    except UnicodeDecodeError as e:
        bad_utf8.append(line[:100])
try:
    entries = json.loads(raw.decode("utf-8", "surrogateescape"))  # one array
except ValueError as e:
    sys.exit("ls --json: not one JSON array: %r: %s" % (raw[:120], e))
for o in entries:
    listed[os.fsencode(o["path"])] = o
want = {b"/src"}
def onerror(e):
    sys.exit("walking the source: %s" % e)
for dirpath, dirs, files, _ in os.fwalk(os.fsencode(top), onerror=onerror):
    rel = dirpath[len(os.fsencode(top)):]
    for n in dirs + files:
        want.add(b"/src" + rel + b"/" + n)
missing = sorted(want - set(listed))
extra = sorted(set(listed) - want)
for m in missing[:10]:
    print("missing from ls --json:", m[:200])
for m in extra[:10]:
    print("unexpected in ls --json:", m[:200])
big = listed.get(b"/src/big")
if not big or big["type"] != "file" or big["size"] != 20 << 20 or big["mtime_ns"] != "1577934245123456789":
    print("ls --json: /src/big wrong:", big)
    sys.exit(1)
for path, ns in ((b"/src/old-1969", "-500000000"), (b"/src/old-1901", "-2147471999999999999"),
                 (b"/src/future-2262", "9223372036854775807")):
    if listed.get(path, {}).get("mtime_ns") != ns:
        print("ls --json: %s: mtime_ns %s, expected %s" % (path, listed.get(path), ns))
        sys.exit(1)
for b in bad_utf8:
    print("ls --json: a line is not UTF-8 (a name that is not UTF-8 is copied as raw bytes):", b)
if bad_utf8 and os.environ.get("ENGINE_LENIENT_JSON") != "1":
    sys.exit(1)
sys.exit(1 if missing or extra else 0)
EOF

    say "roundtrip: dump"
    pf dump latest src/big >"$W/big.dump" || fail "dump src/big"
    cmp "$W/src/big" "$W/big.dump" || fail "dump of src/big differs"
    pf dump latest $'src/new\nline' >"$W/nl.dump" || fail "dump of a name with a newline"
    cmp "$W/src/"$'new\nline' "$W/nl.dump" || fail "dump of src/new\\nline differs"
    pf dump latest src/sparse | cmp - "$W/src/sparse" || fail "dump of src/sparse differs"
    run 0 pf dump latest src/empty
    [ ! -s "$W/out.txt" ] || fail "dump of an empty file printed bytes"
    run 13 pf dump latest src/no-such-file
    run nonzero pf dump latest src/dir

    say "roundtrip: restore of subpaths"
    run 0 pf restore latest --target "$W/r2" src/dir
    compare "$W/src/dir" "$W/r2/src/dir" --no-hardlinks
    [ "$(ls -A "$W/r2/src")" = dir ] || fail "subpath restore wrote $(ls -A "$W/r2/src")"
    run 0 pf restore latest --target "$W/r3" src/big "src/$deep"
    cmp "$W/src/big" "$W/r3/src/big" || fail "restore of src/big"
    # longer than PATH_MAX: open it one directory at a time
    python3 - "$W/r3/src" "$deep" <<'EOF' || fail "restore of the deep file"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
for part in sys.argv[2].split("/")[:-1]:
    fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
leaf = os.open("leaf", os.O_RDONLY, dir_fd=fd)
sys.exit(0 if os.read(leaf, 100) == b"deep\n" else 1)
EOF
    [ "$(ls -A "$W/r3/src" | wc -l)" = 2 ] || fail "restore of two paths wrote $(ls -A "$W/r3/src")"
    run 13 pf restore latest --target "$W/r4" src/not-there
    rm -rf "$W/r2" "$W/r3" "$W/r4" "$W/big.dump"
}

part_incremental() {
    say "incremental: change, add, delete, touch"
    [ -d "$W/src" ] || part_roundtrip
    REPO=$W/repo
    local src=$W/src
    printf 'more\n' >>"$src/dir/a"                       # changed: size and mtime
    local mt
    mt=$(stat -c %y "$src/dir/sub/subsub/f")
    printf 'X\n' >"$src/dir/sub/subsub/f"                # changed: same size, same mtime
    touch -d "$mt" "$src/dir/sub/subsub/f"
    printf 'new file\n' >"$src/added"                    # added
    rm "$src/"$'tab\there'                               # deleted
    touch "$src/setgid"                                  # touched: same bytes
    touch -d '2004-02-03 04:05:06.999999999' "$src"
    run 0 pf --json backup "$src"
    cp "$W/out.txt" "$W/backup2.json"
    python3 - "$W/backup2.json" "$W/backup1.json" <<'EOF' || fail "second backup's statistics"
import json, sys
s2 = json.load(open(sys.argv[1]))
s1 = json.load(open(sys.argv[2]))
st = s2["stats"]
print("second backup:", st)
ok = True
if s2.get("parent") != s1["id"]:
    print("parent is not the first snapshot"); ok = False
if st["files"] - st["files_unchanged"] > 5:
    print("more than the 4 changed files were read"); ok = False
if st["files_unchanged"] < 15:
    print("too few unchanged files"); ok = False
if not st["bytes_read"] * 50 < st["bytes"]:
    print("bytes_read is not much smaller than bytes"); ok = False
if st["bytes_new"] > (1 << 20):
    print("more than 1 MiB new"); ok = False
sys.exit(0 if ok else 1)
EOF
    SNAP2=$(jget "$W/backup2.json" 'd["id"]')
    run 0 pf restore latest --keep-special --target "$W/r5"
    compare --ignore-sockets "$src" "$W/r5/src"
    say "incremental: the first snapshot still restores to the first tree"
    run 0 pf restore "${SNAP1:0:12}" --keep-special --target "$W/r6"
    compare "$W/r1/src" "$W/r6/src"
    run 0 pf --json snapshots
    [ "$(jget "$W/out.txt" 'len(d)')" = 2 ] || fail "expected 2 snapshots"
    rm -rf "$W/r5" "$W/r6"
}

# ---------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------
# Owners by name: a file of user U (uid A on the old machine) comes back owned by U where U
# is uid B. Users and groups made here are named pfux<pid><letter> and removed on exit.
free_id() { # first id >= $1 that is neither a uid nor a gid here
    local i=$1
    while getent passwd "$i" >/dev/null || getent group "$i" >/dev/null; do i=$((i + 1)); done
    echo "$i"
}
PFUX_USERS=()
pfux_cleanup() {
    local u
    for u in "${PFUX_USERS[@]}"; do
        userdel "$u" 2>/dev/null || true
        groupdel "$u" 2>/dev/null || true
    done
}
pfux_add() { # NAME ID: a user and a group of that name, both with that id
    groupadd -g "$2" "$1"
    useradd -M -N -u "$2" -g "$2" -s /usr/sbin/nologin "$1"
    PFUX_USERS+=("$1")
}
pfux_big_group() { # NAME ID: a group whose entry is over 16 KiB (3000 members)
    groupadd -g "$2" "$1"
    PFUX_USERS+=("$1")
    gpasswd -M "$(python3 -c 'print(",".join(["nobody"] * 3000))')" "$1" >/dev/null
}
pfux_del() {
    userdel "$1"
    groupdel "$1" 2>/dev/null || true
}

part_owners() {
    if [ $ROOT = 0 ]; then
        echo "owners: not root, skipped (chown and useradd need root)"
        return 0
    fi
    say "owners: by name, ids differ between backup and restore"
    trap 'pfux_cleanup; cleanup' EXIT
    local a=pfux$$a b=pfux$$b g=pfux$$g o=$W/owners id1 id2 id3 gid1 gid2
    id1=$(free_id 4001)
    pfux_add "$a" "$id1"
    id2=$(free_id $((id1 + 1)))
    pfux_add "$b" "$id2"
    gid1=$(free_id $((id2 + 1)))
    pfux_big_group "$g" "$gid1"
    mkdir -p "$o/src/dir"
    printf 'a\n' >"$o/src/of-a"
    printf 'b\n' >"$o/src/of-b"
    printf 'mixed\n' >"$o/src/dir/a-user-b-group"
    ln -s of-a "$o/src/link-of-a"
    chown "$a:$a" "$o/src/of-a" "$o/src/dir"
    chown -h "$a:$a" "$o/src/link-of-a"
    chown "$b:$b" "$o/src/of-b"
    chown "$a:$b" "$o/src/dir/a-user-b-group"
    printf 'big group\n' >"$o/src/of-big-group"
    chgrp "$g" "$o/src/of-big-group"
    # the other shapes, owned by users whose ids change: hardlinks, holes, an empty dir
    ln "$o/src/of-a" "$o/src/dir/hardlink-of-a"
    truncate -s 40M "$o/src/sparse-of-a"
    printf 'x' | dd of="$o/src/sparse-of-a" bs=1 seek=$((20 << 20)) conv=notrunc status=none
    chown "$a:$a" "$o/src/sparse-of-a"
    mkdir "$o/src/empty-of-b"
    chown "$b:$a" "$o/src/empty-of-b"
    chmod 2750 "$o/src/empty-of-b"
    touch -d '1965-03-04 05:06:07.000000089 UTC' "$o/src/of-a" "$o/src/dir"
    REPO=$o/repo
    run 0 pf init
    run 0 pf backup "$o/src"
    # The new machine: a has another id, b does not exist (its files keep the old id).
    pfux_del "$a"
    pfux_del "$b"
    id3=$(free_id $((gid1 + 1)))
    pfux_add "$a" "$id3"
    groupdel "$g"
    gid2=$(free_id $((id3 + 1)))
    pfux_big_group "$g" "$gid2"
    run 0 pf restore latest --target "$o/r"
    [ "$(stat -c '%U:%G %u:%g' "$o/r/src/of-a")" = "$a:$a $id3:$id3" ] ||
        fail "of-a: $(stat -c '%U:%G %u:%g' "$o/r/src/of-a"), expected $a:$a $id3:$id3"
    [ "$(stat -c '%u:%g' "$o/r/src/of-b")" = "$id2:$id2" ] ||
        fail "of-b (user gone): $(stat -c '%u:%g' "$o/r/src/of-b"), expected $id2:$id2"
    [ "$(stat -c '%u:%g' "$o/r/src/dir/a-user-b-group")" = "$id3:$id2" ] || fail "user a, group b"
    [ "$(stat -c '%U' "$o/r/src/dir")" = "$a" ] || fail "directory owner by name"
    [ "$(stat -c '%U' "$o/r/src/link-of-a")" = "$a" ] || fail "symlink owner by name"
    [ "$(stat -c '%g' "$o/r/src/of-big-group")" = "$gid2" ] ||
        fail "a group with a 16 KiB entry: gid $(stat -c '%g' "$o/r/src/of-big-group"), expected $gid2"
    # every other field exactly as backed up, with a's ids mapped
    compare --uid-map "$id1:$id3" --gid-map "$id1:$id3" --gid-map "$gid1:$gid2" "$o/src" "$o/r/src"
    say "owners: --numeric-owner keeps the recorded ids"
    run 0 pf restore latest --numeric-owner --target "$o/rn"
    [ "$(stat -c '%u:%g' "$o/rn/src/of-a")" = "$id1:$id1" ] || fail "--numeric-owner: of-a"
    compare "$o/src" "$o/rn/src"
    rm -rf "$o"
}

# ---------------------------------------------------------------------------------------
# The media of a Mastodon restore go through the same restorer, with the safe defaults
# always on. Secrets and media need no database or Redis server.
part_media() {
    say "media: times before 1970, no FIFO, no setuid, no symlink pointing outside"
    local m=$W/media sys
    sys=$m/old/live/public/system
    mkdir -p "$sys/accounts/avatars" "$m/new"
    printf 'LOCAL_DOMAIN=example.com\nDB_HOST=127.0.0.1\nDB_USER=mastodon\nDB_NAME=mastodon_production\nREDIS_HOST=127.0.0.1\nSECRET_KEY_BASE=x\n' \
        >"$m/old/live/.env.production"
    printf 'old\n' >"$sys/accounts/avatars/old.png"
    touch -d '1969-12-31 23:59:59.5 UTC' "$sys/accounts/avatars/old.png"
    printf 'older\n' >"$sys/accounts/avatars/older.png"
    touch -d '1901-12-14 00:00:00.000000001 UTC' "$sys/accounts/avatars/older.png"
    printf 'late\n' >"$sys/accounts/avatars/late.png"
    touch -d '2262-04-11 23:47:16.854775807 UTC' "$sys/accounts/avatars/late.png"
    printf 'suid\n' >"$sys/accounts/suid"
    chmod 4755 "$sys/accounts/suid"
    mkfifo "$sys/accounts/fifo"
    ln -s /home/mastodon/live/.env.production "$sys/accounts/leak"
    ln -s ../../../.env.production "$sys/accounts/avatars/leak2"
    ln -s ../accounts/avatars/old.png "$sys/accounts/inside"
    touch -h -d '1969-07-20 20:17:40 UTC' "$sys/accounts/inside"
    touch -d '1968-01-01 00:00:00.25 UTC' "$sys/accounts/avatars" "$sys/accounts"
    REPO=$m/repo
    run 0 pf init
    run 0 pf backup --live "$m/old/live" --only secrets,media
    run 0 pf restore latest --live "$m/new/live" --only secrets,media
    local r=$m/new/live/public/system
    grep -q '1 device node or FIFO not created, setuid/setgid cleared on 1 file, 2 symlinks pointing outside not created' \
        "$W/err.txt" || fail "media: the warning does not count what was left out: $(cat "$W/err.txt")"
    [ ! -e "$r/accounts/fifo" ] || fail "media: FIFO restored"
    [ ! -L "$r/accounts/leak" ] && [ ! -L "$r/accounts/avatars/leak2" ] || fail "media: a symlink pointing outside was restored"
    [ "$(stat -c %a "$r/accounts/suid")" = 755 ] || fail "media: setuid kept"
    compare --skip-top --exclude accounts/fifo --exclude accounts/suid \
        --exclude accounts/leak --exclude accounts/avatars/leak2 "$sys" "$r"
    [ "$(stat -c %y "$r/accounts/avatars/old.png")" = '1969-12-31 23:59:59.500000000 +0000' ] ||
        [ "$(TZ=UTC stat -c %y "$r/accounts/avatars/old.png")" = '1969-12-31 23:59:59.500000000 +0000' ] ||
        fail "media: pre-1970 time: $(TZ=UTC stat -c %y "$r/accounts/avatars/old.png")"
    rm -rf "$m"
}

# ---------------------------------------------------------------------------------------
# A local user who owns part of the target (public/system, say) plants symlinks where the
# root restore will create entries. Nothing outside the target may change.
part_planted() {
    if [ $ROOT = 0 ]; then
        echo "planted: not root, skipped (the attack is on a root restore)"
        return 0
    fi
    say "planted: symlinks in place of a directory, a file, a symlink and a FIFO; a hardlink in place of a file"
    local p=$W/planted as=(runuser -u nobody --)
    mkdir -p "$p/src/system/dir" "$p/outside-dir"
    printf 'restored\n' >"$p/src/system/file"
    printf 'inside\n' >"$p/src/system/dir/f"
    mkdir "$p/src/system/dir2"
    printf 'inside 2\n' >"$p/src/system/dir2/f"
    ln -s file "$p/src/system/link"
    printf 'hard\n' >"$p/src/system/hard"
    mkfifo "$p/src/system/fifo"
    chmod 0777 "$p/src/system/dir" "$p/src/system/file" "$p/src/system/fifo"
    chown 1234:1234 "$p/src/system/dir" "$p/src/system/file"
    touch -d '2001-01-01 00:00:00.5' "$p/src/system/dir" "$p/src/system/file" "$p/src/system/fifo"
    REPO=$p/repo
    run 0 pf init
    run 0 pf backup "$p/src/system"
    # /etc/shadow stands in: root's, 0600, a known time
    printf 'root:secret\n' >"$p/shadow"
    chmod 0600 "$p/shadow"
    touch -d '1999-09-09 09:09:09.123456789' "$p/shadow"
    local before
    before=$(stat -c '%a %u:%g %y %s %i' "$p/shadow")
    chmod 755 "$p"
    mkdir -p "$p/target/system"
    chown nobody "$p/target/system"
    local n
    for n in dir file link fifo; do
        "${as[@]}" ln -s "$p/shadow" "$p/target/system/$n"
    done
    "${as[@]}" ln -s "$p/outside-dir" "$p/target/system/dir2"
    # a hardlink to it where a file goes (fs.protected_hardlinks stops nobody; root stands in)
    ln "$p/shadow" "$p/target/system/hard"
    run 0 pf restore latest --keep-special --target "$p/target"
    [ "$(stat -c '%a %u:%g %y %s %i' "$p/shadow")" = "$before" ] ||
        fail "the file outside changed: $(stat -c '%a %u:%g %y %s %i' "$p/shadow"), was $before"
    [ "$(cat "$p/shadow")" = 'root:secret' ] || fail "the file outside was written"
    [ -z "$(ls -A "$p/outside-dir")" ] || fail "restore wrote into a planted symlink's target"
    compare "$p/src/system" "$p/target/system" --skip-top
    rm -rf "$p"
}

part_kill() {
    say "kill -9 during backups of $KILL_MB MiB"
    local k=$W/kill-src i
    mkdir -p "$k/small"
    for i in $(seq 1 $((KILL_MB / 10))); do head -c 10M /dev/urandom >"$k/f$i"; done
    for i in $(seq 1 200); do printf 'small file %d\n' "$i" >"$k/small/s$i"; done
    local data=$((KILL_MB / 10 * 10 * 1048576)) reused_somewhere=0 m n=0
    # How long does a whole backup take here (a fast disk, a sanitizer build)? The kills
    # land at fractions of that.
    REPO=$W/kill-calibrate
    run 0 pf init
    local t0 t1 moments
    t0=$(date +%s.%N)
    run 0 pf backup "$k"
    t1=$(date +%s.%N)
    rm -rf "$REPO"
    moments=$(awk -v a="$t0" -v b="$t1" 'BEGIN {d = b - a; printf "%.2f %.2f %.2f %.2f", 0.1 * d, 0.3 * d, 0.5 * d, 0.75 * d}')
    echo "a whole backup takes $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')s: killing at $moments"
    for m in ${ENGINE_KILL_AT:-$moments}; do
        n=$((n + 1))
        REPO=$W/kill-repo
        rm -rf "$REPO" "$W/kill-restore"
        run 0 pf init
        "$PF" --repo "$REPO" backup "$k" >"$W/kill-out.txt" 2>&1 &
        local pid=$! rc=0
        BG_PIDS+=("$pid")
        sleep "$m"
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" || rc=$?
        local left
        left=$({ find "$REPO/data" -type f -regextype posix-extended -regex '.*/[0-9a-f]{64}' \
            -printf '%s\n' 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}')
        echo "killed after ${m}s: exit $rc, $left bytes of packs left"
        run 0 pf check
        run 0 pf --json snapshots
        if [ $rc = 0 ]; then
            echo "  (the backup had finished already)"
            [ "$(jget "$W/out.txt" 'len(d)')" = 1 ] || fail "finished backup, no snapshot"
            continue
        fi
        [ $rc = 137 ] || fail "backup exited $rc before the kill"
        local snaps
        snaps=$(jget "$W/out.txt" 'len(d)')
        if [ "$snaps" = 1 ]; then
            # Killed after its snapshot was written, during the exit (slow under a sanitizer):
            # the snapshot is written last, so it must be whole.
            echo "  (killed after its snapshot was written)"
            run 0 pf restore latest --target "$W/kill-restore"
            compare "$k" "$W/kill-restore/kill-src"
            continue
        fi
        [ "$snaps" = 0 ] || fail "a killed backup left $snaps snapshots"
        run 0 pf --json backup "$k"
        local stored
        stored=$(jget "$W/out.txt" 'int(d["stats"]["bytes_stored"])')
        echo "  next backup stored $stored of $data bytes"
        # What the killed run stored is not stored again.
        [ $((stored + left)) -le $((data + data / 50 + 1048576)) ] ||
            fail "next backup stored $stored bytes although $left were already there"
        if [ "$left" -gt 0 ]; then
            reused_somewhere=1
            [ "$stored" -lt "$data" ] || fail "nothing reused"
        fi
        run 0 pf restore latest --target "$W/kill-restore"
        compare "$k" "$W/kill-restore/kill-src"
        if [ $n = 2 ]; then run 0 pf check --read-data; fi
    done
    rm -rf "$W/kill-repo" "$W/kill-restore" "$k"
    [ $reused_somewhere = 1 ] || fail "no kill happened after a pack was written: make KILL_MB larger"
}

# ---------------------------------------------------------------------------------------
# Restoring from a damaged repository must fail or be right: never wrong bytes on disk.
# Checks every file under $2 against the source $1.
no_wrong_bytes() {
    local src=$1 dst=$2 f
    [ -d "$dst" ] || return 0
    while IFS= read -r -d '' f; do
        if ! cmp -s "$src/$f" "$dst/$f"; then
            fail "restore left $f with wrong bytes"
        fi
    done < <(cd "$dst" && find . -type f -print0)
}

part_corrupt() {
    say "corruption: one flipped byte in each kind of object"
    local c=$W/corrupt-src pristine=$W/corrupt-pristine
    mkdir -p "$c"
    head -c 3M /dev/urandom >"$c/victim"
    head -c 2M /dev/urandom >"$c/other"
    printf 'small\n' >"$c/small"
    REPO=$pristine
    run 0 pf init
    run 0 pf --json backup "$c"
    local snap
    snap=$(jget "$W/out.txt" 'd["id"]')

    fresh() { rm -rf "$W/c" "$W/c-out" "$W/c-dump"; cp -a "$pristine" "$W/c"; REPO=$W/c; }
    one() { find "$REPO/$1" -type f | sort | head -n 1; }

    # pack: a byte inside the blobs, then a byte of the header
    local pack key
    for where in 200 -40; do
        fresh
        pack=$(find "$REPO/data" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2)
        key=${pack#"$REPO/"}
        flip_byte "$pack" "$where"
        run 4 pf check --read-data
        grep -qF "$key" "$W/err.txt" "$W/out.txt" || fail "check does not name $key"
        run any pf restore latest --target "$W/c-out"
        local restore_rc=$RC
        no_wrong_bytes "$c" "$W/c-out/corrupt-src"
        if [ "$where" = 200 ]; then
            [ $restore_rc != 0 ] || fail "restore from a damaged pack exited 0"
            [ $restore_rc = 4 ] || echo "note: restore of damaged data exited $restore_rc, not 4"
        fi
        local f dumped=0
        for f in victim other small; do
            local drc=0
            pf dump latest "corrupt-src/$f" >"$W/c-dump" 2>"$W/err.txt" || drc=$?
            [ $drc -lt 128 ] || fail "dump crashed ($drc)"
            if [ $drc = 0 ]; then
                cmp -s "$W/c-dump" "$c/$f" || fail "dump of $f exited 0 with wrong bytes"
                dumped=$((dumped + 1))
            else
                # what was written before the damage was found is a correct prefix
                cmp -s -n "$(stat -c %s "$W/c-dump")" "$W/c-dump" "$c/$f" ||
                    fail "dump of $f wrote wrong bytes"
            fi
        done
        if [ "$where" = 200 ] && [ $dumped = 3 ]; then fail "every dump succeeded from a damaged pack"; fi
    done

    say "corruption: index"
    fresh
    local idx
    idx=$(one index)
    flip_byte "$idx" $(($(stat -c %s "$idx") / 2))
    run 4 pf check --read-data
    grep -qF "${idx#"$REPO/"}" "$W/err.txt" "$W/out.txt" || fail "check does not name ${idx#"$REPO/"}"
    run any pf restore latest --target "$W/c-out"
    no_wrong_bytes "$c" "$W/c-out/corrupt-src"

    say "corruption: snapshot"
    fresh
    flip_byte "$REPO/snapshots/$snap" 40
    run 4 pf check --read-data
    grep -qF "snapshots/$snap" "$W/err.txt" "$W/out.txt" || fail "check does not name snapshots/$snap"
    run nonzero pf restore "${snap:0:16}" --target "$W/c-out"
    no_wrong_bytes "$c" "$W/c-out/corrupt-src"
    run nonzero pf dump "${snap:0:16}" corrupt-src/victim

    say "corruption: key"
    fresh
    local k
    k=$(one keys)
    flip_byte "$k" $(($(stat -c %s "$k") / 2))
    run nonzero pf check --read-data
    grep -qiE 'key|passphrase' "$W/err.txt" || fail "no clear message for a damaged key"
    run nonzero pf restore latest --target "$W/c-out"
    [ ! -e "$W/c-out/corrupt-src/victim" ] || fail "restore with a damaged key wrote files"

    say "corruption: config"
    fresh
    flip_byte "$REPO/config" 0
    run nonzero pf check --read-data
    grep -qi 'config' "$W/err.txt" || fail "no clear message for a damaged config"
    run nonzero pf restore latest --target "$W/c-out"
    run nonzero pf dump latest corrupt-src/victim
    rm -rf "$W/c" "$W/c-out" "$W/c-dump" "$pristine" "$c"
}

# ---------------------------------------------------------------------------------------
part_badinput() {
    say "bad input: exit codes and messages"
    local b=$W/bad
    mkdir -p "$b/src"
    printf 'a\n' >"$b/src/a"
    REPO=$b/repo
    run 0 pf init
    run 0 pf backup "$b/src"
    run 6 pf init
    PERMAFROST_PASSWORD=wrong run 12 pf snapshots
    grep -qi passphrase "$W/err.txt" || fail "wrong passphrase: no message"
    REPO=$b/no-such-repo
    run 10 pf snapshots
    grep -q init "$W/err.txt" || fail "missing repository: the message does not mention init"
    run 10 pf backup "$b/src"
    [ ! -e "$b/no-such-repo" ] || fail "a command on a missing repository created it"
    REPO=$b/repo
    run 13 pf ls 0123456789abcdef
    run 13 pf restore 0123456789abcdef --target "$b/out"
    run 13 pf dump 0123456789abcdef src/a
    run 13 pf ls latest src/nothing-here
    run 2 pf restore latest
    run 2 pf frobnicate

    say "bad input: no passphrase and no terminal"
    (
        unset PERMAFROST_PASSWORD
        run 2 setsid -w "$PF" --repo "$REPO" snapshots </dev/null
    )
    grep -qi passphrase "$W/err.txt" || fail "no passphrase: the message does not say so"

    say "bad input: an unreadable source file"
    local u=$W/unread
    mkdir -p "$u/src/sub"
    printf 'readable\n' >"$u/src/ok"
    printf 'secret\n' >"$u/src/sub/locked"
    printf 'also readable\n' >"$u/src/sub/ok2"
    chmod 000 "$u/src/sub/locked"
    REPO=$u/repo
    if [ $ROOT = 1 ]; then
        # root reads anything: run permafrost as nobody, owner of the repository. nobody may
        # not reach the build tree (a clone in /root is 0700), so it runs a copy from here.
        local as=(runuser -u nobody --)
        mkdir "$REPO"
        chown nobody "$REPO"
        chmod 755 "$u" "$u/src" "$u/src/sub"
        install -m 755 "$PF" "$u/permafrost"
        run 0 "${as[@]}" "$u/permafrost" --repo "$REPO" init
        run 3 "${as[@]}" "$u/permafrost" --repo "$REPO" backup "$u/src"
    else
        run 0 pf init
        run 3 pf backup "$u/src"
    fi
    grep -qF "$u/src/sub/locked" "$W/err.txt" || fail "the warning does not name the file"
    run 0 pf ls latest
    grep -qF '/src/sub/ok2' "$W/out.txt" || fail "the incomplete snapshot lacks the rest"
    grep -qF '/src/ok' "$W/out.txt" || fail "the incomplete snapshot lacks the rest"
    if grep -qF '/src/sub/locked' "$W/out.txt"; then fail "the unreadable file is in the snapshot"; fi
    run 0 pf restore latest --target "$u/out"
    cmp "$u/src/ok" "$u/out/src/ok" || fail "restore of an incomplete snapshot"
}

for part in $PARTS; do
    "part_$part"
done
echo "engine: all parts passed ($PARTS)"

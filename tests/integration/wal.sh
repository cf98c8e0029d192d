#!/usr/bin/env bash
# The WAL archive (docs/FORMAT.md §16) against a real PostgreSQL with archive_mode = on,
# whose archive_command is `permafrost wal-push %p` (run as the server's OS user).
#   push      the same file twice succeeds, other bytes under its name are refused (exit 6,
#             one line naming it), wal-fetch gives the bytes back, a name never archived
#             is exit 1; the second push derives no key (the cached key opened it)
#   batch     a pg_wal with a backlog of .ready segments: one call stores the file and the
#             ready segments after it (--batch N), the next call for one of them returns 0
#             from the spool without the key or a write; an entry whose file's bytes or
#             repository object do not match is not trusted; stale entries are swept
#   archive   pg_switch_wal(): the segment is in the repository within a bounded wait,
#             byte for byte the server's
#   offline   the repository unreachable: archiving fails, PostgreSQL keeps the segment
#             (.ready) and retries; once it is back the segment arrives
#   kill      kill -9 at several moments of a wal-push (and of a batch): the repository has
#             each file whole or not at all (and no spool entry for one it lacks), check
#             finds no damage, a new push completes it
#   prune     prune keeps every archived file fetchable
# WAL_PARTS="push kill" runs some parts only.
set -eEuo pipefail
trap 'echo "FAIL: line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR

PF=${PERMAFROST:-$PWD/permafrost}
HARNESS=$(cd "$(dirname "$0")/../harness" && pwd)
PARTS=${WAL_PARTS:-push batch archive offline kill prune}
. "$HARNESS/pg.sh"
. "$HARNESS/pfserver.sh"

W=$(mktemp -d "${TMPDIR:-/tmp}/pf-wal.XXXXXX")
BG=
cleanup() {
    [ -z "$BG" ] || kill -9 "$BG" 2>/dev/null || true
    harness_run_exit
    rm -rf "$W"
}
trap cleanup EXIT

say() { echo "== $*"; }
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

# Everything the server's OS user runs goes through $W/pf, which carries the environment an
# archive_command would get from a real setup (password file, repository, key cache).
harness_as_owner true # fails early when the postgres user is missing
pf_server_home "$W" wal-test-passphrase
pf_server_wrapper "$W" pf "$W/repo" PERMAFROST_LOCK_WAIT=5
mkdir "$W/repo" "$W/files" "$W/kc"
chmod 700 "$W/kc"
harness_chown_pg "$W/repo" "$W/files" "$W/kc"
pf() { harness_as_owner "$W/pf" "$@"; }
pf init >/dev/null

# A file with a WAL name on timeline 0000000F, which the server never uses.
wal_file() { # NAME MB [SEED]
    harness_as_owner sh -c "head -c $(($2 * 1048576)) /dev/urandom >'$W/files/$1'"
}

if has push; then
    say push
    N=0000000F0000000000000001
    wal_file $N 3
    pf wal-push "$W/files/$N"
    [ -f "$W/repo/wal/0000000F/$N" ] || fail "no wal/0000000F/$N after wal-push"
    ls "$W/kc/"*.key >/dev/null || fail "the first wal-push cached no key"
    # The cached key must be what opens the repository now: a wrong passphrase would
    # otherwise fail the second push.
    cp "$W/pass" "$W/pass.good"
    printf 'not-the-passphrase\n' >"$W/pass"
    pf wal-push "$W/files/$N" 2>"$W/err" || fail "second push of the same bytes failed: $(cat "$W/err")"
    grep -q "already archived with the same content" "$W/err" || fail "second push said: $(cat "$W/err")"
    cp "$W/pass.good" "$W/pass"
    ok "the same bytes twice: exit 0 both times, the second opened with the cached key"

    cp "$W/files/$N" "$W/orig"
    harness_as_owner sh -c "printf X | dd of='$W/files/$N' bs=1 seek=1000 conv=notrunc 2>/dev/null"
    rc=0
    pf wal-push "$W/files/$N" 2>"$W/err" || rc=$?
    [ "$rc" = 6 ] || fail "other bytes under an archived name: exit $rc, wanted 6"
    [ "$(wc -l <"$W/err")" = 1 ] && grep -q "$N is already archived with other content" "$W/err" ||
        fail "refusal message: $(cat "$W/err")"
    ok "other bytes under the same name refused: $(cat "$W/err")"

    pf wal-fetch $N "$W/files/fetched"
    cmp "$W/orig" "$W/files/fetched" || fail "wal-fetch gave other bytes than the first push"
    rc=0
    pf wal-fetch 0000000F0000000000000002 "$W/files/none" 2>"$W/err" || rc=$?
    [ "$rc" = 1 ] || fail "wal-fetch of a name never archived: exit $rc, wanted 1"
    [ ! -e "$W/files/none" ] || fail "wal-fetch of a missing name created the file"
    rc=0
    pf wal-fetch 00000010.history "$W/files/none" 2>/dev/null || rc=$?
    [ "$rc" = 1 ] || fail "wal-fetch of a missing history file: exit $rc, wanted 1"
    mv "$W/repo" "$W/repo.gone"
    rc=0
    pf wal-fetch $N "$W/files/none" 2>"$W/err" || rc=$?
    mv "$W/repo.gone" "$W/repo"
    [ "$rc" = 126 ] || fail "wal-fetch with the repository unreachable: exit $rc, wanted 126 ($(cat "$W/err"))"
    ok "wal-fetch returns the first bytes; a missing segment or history file is exit 1, an unreachable repository 126 (recovery stops rather than ends)"

    # A hostile store cannot answer for one name with another's object.
    M=0000000F0000000000000003
    wal_file $M 1
    pf wal-push "$W/files/$M"
    cp "$W/repo/wal/0000000F/$N" "$W/repo/wal/0000000F/$M"
    rc=0
    pf wal-fetch $M "$W/files/swapped" 2>"$W/err" || rc=$?
    [ "$rc" = 126 ] || fail "a swapped WAL object: exit $rc, wanted 126 ($(cat "$W/err"))"
    ok "an object renamed to another segment's name does not open: $(cat "$W/err")"
    rm "$W/repo/wal/0000000F/$M"
    # Timeline 15 was made up: out of the way of the server's real segments below.
    rm -r "$W/repo/wal/0000000F"
fi

if has batch; then
    say batch
    # A pg_wal of our own, shaped as PostgreSQL leaves it with a backlog: segments and
    # their archive_status/*.ready files (timeline 0E, which the server never uses).
    B=$W/files/b/pg_wal
    harness_as_owner mkdir -p "$B/archive_status"
    seg() { echo 0000000E00000000000000$1; }
    for i in 01 02 03 04 05 06; do
        wal_file "b/pg_wal/$(seg $i)" 1
        harness_as_owner touch "$B/archive_status/$(seg $i).ready"
    done
    pf wal-push --batch 4 "$B/$(seg 01)"
    for i in 01 02 03 04; do
        [ -f "$W/repo/wal/0000000E/$(seg $i)" ] || fail "batch: $(seg $i) not stored with $(seg 01)"
    done
    [ ! -e "$W/repo/wal/0000000E/$(seg 05)" ] || fail "batch: more files than --batch 4 pushed"
    spool=$(ls -d "$W/kc/wal-ready/"*)
    [ "$(ls "$spool" | sort | tr '\n' ' ')" = "$(seg 02) $(seg 03) $(seg 04) " ] ||
        fail "batch: spool holds $(ls "$spool")"
    [ "$(stat -c %a "$spool")" = 700 ] && [ "$(stat -c %a "$spool/$(seg 02)")" = 600 ] ||
        fail "batch: spool modes $(stat -c %a "$spool" "$spool/$(seg 02)")"
    # The next call needs neither the key nor a write: with no cached key and a wrong
    # passphrase, only the spool's check can let it succeed.
    mv "$W/kc" "$W/kc.away"
    mkdir -m 700 "$W/kc"
    harness_chown_pg "$W/kc"
    mv "$W/kc.away/wal-ready" "$W/kc/"
    cp "$W/pass" "$W/pass.good"
    printf 'not-the-passphrase\n' >"$W/pass"
    find "$W/repo" -type f | sort >"$W/files.before"
    harness_as_owner mv "$B/archive_status/$(seg 01).ready" "$B/archive_status/$(seg 01).done"
    pf -v wal-push "$B/$(seg 02)" 2>"$W/err" || fail "batch: the call for $(seg 02): $(cat "$W/err")"
    grep -q "stored with the segments before it" "$W/err" || fail "batch: $(cat "$W/err")"
    find "$W/repo" -type f | sort | cmp -s - "$W/files.before" || fail "batch: the call for $(seg 02) wrote to the repository"
    [ ! -e "$spool/$(seg 02)" ] || fail "batch: the entry of $(seg 02) was not used up"
    ok "--batch 4: the 3 ready segments after the first stored in the same run; the call for the next returned 0 from the spool (no key, nothing written)"

    # Other bytes under a name the spool vouches for: the entry is not trusted, the push
    # is refused as any push of other bytes is.
    harness_as_owner sh -c "printf X | dd of='$B/$(seg 03)' bs=1 seek=5000 conv=notrunc 2>/dev/null"
    cp "$W/pass.good" "$W/pass"
    rc=0
    pf wal-push --batch 1 "$B/$(seg 03)" 2>"$W/err" || rc=$?
    [ "$rc" = 6 ] && grep -q "already archived with other content" "$W/err" ||
        fail "batch: changed bytes under a spooled name: exit $rc ($(cat "$W/err"))"
    [ ! -e "$spool/$(seg 03)" ] || fail "batch: the entry that did not match is still there"
    # The object the entry names is gone (removed by hand): the entry is not trusted, the
    # file is stored again.
    rm "$W/repo/wal/0000000E/$(seg 04)"
    pf wal-push --batch 1 "$B/$(seg 04)" 2>"$W/err" || fail "batch: $(seg 04) after its object was removed: $(cat "$W/err")"
    [ -f "$W/repo/wal/0000000E/$(seg 04)" ] || fail "batch: $(seg 04) not stored again"
    [ -z "$(ls "$spool")" ] || fail "batch: entries left: $(ls "$spool")"
    ok "a spool entry is not trusted when the file's bytes or the repository's object do not match"

    # The default batch takes every ready segment after the file; the entry of one that
    # stops being .ready (archived some other way) is swept by the next batch; --batch 1
    # pushes only its file.
    for i in 01 02 03 04; do
        harness_as_owner rm -f "$B/archive_status/$(seg $i).ready"
    done
    pf wal-push "$B/$(seg 05)"
    [ -f "$W/repo/wal/0000000E/$(seg 06)" ] && [ -f "$spool/$(seg 06)" ] ||
        fail "batch: the default batch did not store and note $(seg 06)"
    harness_as_owner rm "$B/archive_status/$(seg 05).ready" "$B/archive_status/$(seg 06).ready"
    for i in 07 08; do
        wal_file "b/pg_wal/$(seg $i)" 1
        harness_as_owner touch "$B/archive_status/$(seg $i).ready"
    done
    pf wal-push --batch 1 "$B/$(seg 07)"
    [ ! -e "$W/repo/wal/0000000E/$(seg 08)" ] || fail "batch: --batch 1 pushed $(seg 08)"
    harness_as_owner rm "$B/archive_status/$(seg 07).ready"
    pf wal-push "$B/$(seg 08)"
    [ -z "$(ls "$spool")" ] || fail "batch: the entry of $(seg 06), no longer ready, was not swept: $(ls "$spool")"
    for i in 01 02 04 05 06 07 08; do
        pf wal-fetch "$(seg $i)" "$W/files/f" && cmp -s "$W/files/f" "$B/$(seg $i)" ||
            fail "batch: $(seg $i) fetched differs"
    done
    pf check >"$W/check.out" 2>&1 || fail "batch: check: $(cat "$W/check.out")"
    ok "the default batch stores the ready segments after its file; --batch 1 only its file; stale entries swept; all fetch back byte for byte, check passes"
    rm -r "$W/repo/wal/0000000E"
fi

if has archive || has offline; then
    pg_start_archiving "$W/db" "$W/pf wal-push %p"
    pg_psql "$W/db" -c "create table t (id serial primary key, at timestamptz default now())"
fi

# wait_archived NAME SECONDS: polls until the repository has NAME.
wait_archived() {
    local i
    for ((i = 0; i < $2 * 5; i++)); do
        [ -f "$W/repo/wal/${1:0:8}/$1" ] && return 0
        sleep 0.2
    done
    return 1
}
switch_wal() {
    pg_psql "$W/db" -c "insert into t default values" >/dev/null
    pg_psql "$W/db" -Atc "select pg_walfile_name(pg_switch_wal())"
}

if has archive; then
    say archive
    S=$(switch_wal)
    wait_archived "$S" 60 || fail "segment $S not archived within 60 s"
    pf wal-fetch "$S" "$W/files/seg"
    if [ -f "$W/db/pg/pg_wal/$S" ]; then
        cmp "$W/db/pg/pg_wal/$S" "$W/files/seg" || fail "archived $S differs from the server's"
    fi
    pf snapshots >"$W/snaps.out"
    grep -q "^WAL archived up to segment $S (pushed " "$W/snaps.out" ||
        fail "snapshots does not show the newest archived segment $S: $(cat "$W/snaps.out")"
    pf status >"$W/status.out" 2>&1 || fail "status: $(cat "$W/status.out")"
    grep -q "^WAL archived up to segment $S (pushed " "$W/status.out" ||
        fail "status does not show the newest archived segment $S: $(cat "$W/status.out")"
    pf --json status | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if d['wal']['newest_segment'] == '$S' else 1)" ||
        fail "status --json has no wal.newest_segment $S"
    pf --json status >"$W/status.json" && python3 "$PF_SRC/tests/lib/check_json.py" "$PF_SRC/docs/JSON.md" status "$W/status.json" >/dev/null &&
        python3 -c "import json,sys; w=json.load(open(sys.argv[1]))['wal']; assert w['time'].endswith('Z') and w['age_seconds'] >= 0, w" "$W/status.json" ||
        fail "status --json: wal does not follow docs/JSON.md: $(cat "$W/status.json")"
    ok "pg_switch_wal: $S in the repository, byte for byte; snapshots and status show it as the newest"
fi

if has offline; then
    say offline
    failed0=$(pg_psql "$W/db" -Atc "select failed_count from pg_stat_archiver")
    mv "$W/repo" "$W/repo.away"
    S=$(switch_wal)
    for ((i = 0; i < 300; i++)); do
        f=$(pg_psql "$W/db" -Atc "select failed_count from pg_stat_archiver")
        [ "$f" -gt "$failed0" ] && break
        sleep 0.2
    done
    [ "$f" -gt "$failed0" ] || fail "archiving did not fail with the repository gone"
    [ -f "$W/db/pg/pg_wal/archive_status/$S.ready" ] || fail "PostgreSQL did not keep $S for a retry"
    grep -q "wal-push $S" "$W/db/pgrun/pg.log" || fail "the server log does not name the failed push"
    mv "$W/repo.away" "$W/repo"
    # The archiver retries on its own within a minute; a new segment wakes it now.
    S2=$(switch_wal)
    wait_archived "$S" 60 || fail "$S not archived after the repository came back"
    wait_archived "$S2" 60 || fail "$S2 not archived after the repository came back"
    ok "repository away: push failed ($(grep -m1 "wal-push $S" "$W/db/pgrun/pg.log" | sed 's/.*permafrost: //')), $S kept and archived once it was back"
fi

if has kill; then
    say kill
    # As this user, into a repository of its own, so that $! is permafrost itself (runuser
    # would stand between) and the kill lands on it.
    K=0000000F00000000000000A0
    head -c $((40 * 1048576)) /dev/urandom >"$W/k.src"
    mkdir "$W/k"
    cp "$W/k.src" "$W/k/$K"
    KENV=(PERMAFROST_PASSWORD=kill-test PERMAFROST_REPO="$W/krepo" PERMAFROST_KEY_CACHE="$W/kkc"
        PERMAFROST_CONFIG="$W/empty.conf" PERMAFROST_LOCK_WAIT=5 PERMAFROST_PASSWORD_FILE=)
    kpf() { env "${KENV[@]}" "$PF" "$@"; }
    kpf init >/dev/null
    for at in 0.05 0.15 0.3 0.6 1.2; do
        rm -rf "$W/kkc" # each run derives the key again: the kill lands at other stages
        env "${KENV[@]}" "$PF" wal-push "$W/k/$K" & # env execs: $! is permafrost
        BG=$!
        sleep "$at"
        kill -9 "$BG" 2>/dev/null || true
        wait "$BG" 2>/dev/null || true
        BG=
        # The killed push's lock is of a dead process on this host: stale at once.
        if [ -f "$W/krepo/wal/0000000F/$K" ]; then
            kpf wal-fetch $K "$W/k.out" && cmp "$W/k.src" "$W/k.out" ||
                fail "killed at ${at}s: the stored file is not whole"
            state=whole
        else
            state=absent
        fi
        kpf check >"$W/check.out" 2>&1 || fail "killed at ${at}s: check: $(cat "$W/check.out")"
        echo "killed at ${at}s: $state"
        rm -f "$W/krepo/wal/0000000F/$K"
    done
    kpf wal-push "$W/k/$K"
    kpf wal-fetch $K "$W/k.out"
    cmp "$W/k.src" "$W/k.out" || fail "push after the kills: not whole"
    ok "kill -9 during wal-push leaves the file whole or absent, never half; check passes"

    # The same during a batch: every object there is whole, every spool entry names one.
    KB=$W/kb/pg_wal
    mkdir -p "$KB/archive_status"
    for i in 1 2 3 4; do
        head -c $((8 * 1048576)) /dev/urandom >"$KB/0000000F00000000000000B$i"
        touch "$KB/archive_status/0000000F00000000000000B$i.ready"
    done
    # "objects": as soon as the first object is there, while the others are written.
    for at in 0.1s 0.5s objects; do
        rm -rf "$W/krepo/wal/0000000F" "$W/kkc/wal-ready"
        env "${KENV[@]}" "$PF" wal-push "$KB/0000000F00000000000000B1" &
        BG=$!
        if [ "$at" = objects ]; then
            for ((i = 0; i < 6000; i++)); do
                [ -f "$W/krepo/wal/0000000F/0000000F00000000000000B1" ] || ! kill -0 "$BG" 2>/dev/null && break
                sleep 0.01
            done
        else
            sleep "${at%s}"
        fi
        kill -9 "$BG" 2>/dev/null || true
        wait "$BG" 2>/dev/null || true
        BG=
        stored=0
        for i in 1 2 3 4; do
            K=0000000F00000000000000B$i
            if [ -f "$W/krepo/wal/0000000F/$K" ]; then
                kpf wal-fetch $K "$W/k.out" && cmp -s "$KB/$K" "$W/k.out" ||
                    fail "batch killed at ${at}: $K is not whole"
                stored=$((stored + 1))
            elif [ -n "$(ls "$W/kkc/wal-ready/"*/$K 2>/dev/null)" ]; then
                fail "batch killed at ${at}: a spool entry for $K, which is not stored"
            fi
        done
        kpf check >"$W/check.out" 2>&1 || fail "batch killed at ${at}: check: $(cat "$W/check.out")"
        echo "batch killed at ${at}: $stored of 4 stored"
    done
    kpf wal-push "$KB/0000000F00000000000000B1"
    for i in 2 3 4; do
        kpf wal-push "$KB/0000000F00000000000000B$i"
        kpf wal-fetch 0000000F00000000000000B$i "$W/k.out" && cmp -s "$KB/0000000F00000000000000B$i" "$W/k.out" ||
            fail "batch after the kills: B$i not whole"
    done
    ok "kill -9 during a batch leaves each file whole or absent and no spool entry for an absent one; check passes"
fi

if has prune; then
    say prune
    names=$(cd "$W/repo/wal" && find . -type f | sed 's|.*/||' | sort)
    [ -n "$names" ] || fail "nothing archived to prune around"
    pf prune >/dev/null
    for n in $names; do
        pf wal-fetch "$n" "$W/files/p" || fail "prune lost archived $n"
    done
    ok "prune keeps all $(echo "$names" | wc -w) archived files fetchable"
fi
echo "all WAL tests passed"

#!/usr/bin/env bash
# Off-site repositories through the CLI, against real servers on loopback: OpenSSH's sshd
# (sftp://) and s3rver (s3:), both started by tests/harness.
#   basics      for each driver: init, backup of a small file tree, snapshots, ls, restore
#               (compared exactly), dump, check --read-data; the metadata cache is filled,
#               and deleting it (or turning it off) changes no output
#   mastodon    a Mastodon-shaped server backed up with backup --live to each remote
#               repository, restored onto blank servers: identical digests
#   errors      wrong SSH key, host key mismatch, unknown host key, wrong S3 credentials, a
#               missing bucket, a closed port, a wrong passphrase: one clear line and the
#               documented exit code
#   copy        local repository -> S3 with another passphrase; a second copy copies
#               nothing; the copies restore exactly; a copy killed (-9) midway through a
#               ~100 MB snapshot resumes, reusing what it uploaded
#   kill        the server killed (-9) during a ~100 MB backup: the backup fails cleanly
#               (no hang, no crash, no snapshot); after a restart check passes and the next
#               backup succeeds, reusing the packs that were uploaded
#   cut         sftp: a restore of ~36 MB through 4 connections gives identical files when a
#               session is dropped in the middle of a pack read (the read is retried on a new
#               session); a server that drops every session at its first pack read makes the
#               restore fail with one clear line within the retry budget, no hang
# OFFSITE_PARTS="basics copy" runs some parts only; OFFSITE_BIG_MB (100) sizes the big tree.
# Prints ok/FAIL lines; exits 1 when anything failed.
set -uo pipefail

SRC=${PF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PF=${PERMAFROST:-$SRC/permafrost}
LIB=${PF_TESTLIB:-$SRC/tests/lib}
PARTS=${OFFSITE_PARTS:-basics mastodon errors copy kill cut}
BIG_MB=${OFFSITE_BIG_MB:-100}
. "$SRC/tests/harness/sshd.sh"
. "$SRC/tests/harness/s3rver.sh"
. "$SRC/tests/harness/mastodon.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/pf-offsite.XXXXXX")
chmod 755 "$T"
[ "${OFFSITE_KEEP:-0}" = 1 ] && echo "keeping $T" || harness_on_exit "rm -rf '$T'"
BG_PIDS=()
harness_on_exit 'for p in "${BG_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done'
L=$T/log
mkdir -p "$L" "$T/home/.ssh"
chmod 700 "$T/home" "$T/home/.ssh"
. "$SRC/tests/lib/counting.sh"
part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac }
t0=$(date +%s)
say() { echo "== $* ($(($(date +%s) - t0)) s)"; }

# Only what the test names: no agent, no /etc/permafrost.conf, a known_hosts of our own
# ($HOME is set for permafrost alone), a cache we can look into.
unset SSH_AUTH_SOCK PERMAFROST_REPO PERMAFROST_PASSWORD_FILE PERMAFROST_TO_PASSWORD_FILE \
    PERMAFROST_TO_PASSWORD PERMAFROST_HOST
: >"$T/empty.conf"
export PERMAFROST_CONFIG=$T/empty.conf
export PERMAFROST_CACHE_DIR=$T/cache
export PERMAFROST_PASSWORD=offsite-test-passphrase
# Failing runs (a killed server, a closed port) retry with short delays.
export PERMAFROST_RETRY_BASE_MS=50
export PERMAFROST_NET_TIMEOUT=20
H=$T/home
CMD_TIMEOUT=${OFFSITE_CMD_TIMEOUT:-300}

# pf ARGS: permafrost with our $HOME (known_hosts) and the test's SSH key, under a timeout
# (exit 124 when it hangs).
pf() { HOME=$H timeout -k 5 "$CMD_TIMEOUT" "$PF" --ssh-key "$SSHD_KEY" "$@"; }
compare() { # DESCRIPTION EXPECTED ACTUAL [OPTIONS]
    local what=$1
    shift
    if python3 "$LIB/compare_trees.py" "$@" >"$T/cmp.txt" 2>&1; then ok "$what"; else
        fail "$what"
        sed 's/^/     | /' "$T/cmp.txt" | head -20
    fi
}
# jget FILE EXPR: a value out of a JSON document (EXPR indexes `d`).
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }
nsnap() { # URL: number of snapshots (empty when it cannot be read)
    pf --repo "$1" --json snapshots 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null
}
# one_line DESCRIPTION: the last run printed nothing on stdout and one line on stderr.
one_line() {
    if [ ! -s "$OUT" ] && [ "$(grep -c . "$ERR")" = 1 ]; then
        ok "$1: one line: $(cut -c1-150 "$ERR")"
    else
        fail "$1: not one line"
        show
    fi
}

# ---- servers ---------------------------------------------------------------------------------
say "starting sshd and s3rver"
# (Other suites may run at the same time: a free port can be taken before the server binds
# it, so each start gets three tries.)
for i in 1 2 3; do
    sshd_start "$T/sshd" >"$L/sshd-start" 2>&1 && break
    sshd_stop
    [ $i = 3 ] && die "cannot start sshd: $(tail -5 "$L/sshd-start" "$T/sshd/sshd.log")"
done
for i in 1 2 3; do
    s3rver_start "$T/s3" "" permafrost >"$L/s3rver-start" 2>&1 && break
    s3rver_stop
    [ $i = 3 ] && die "cannot start s3rver: $(tail -5 "$L/s3rver-start" "$T/s3/s3rver.log")"
done
cp "$SSHD_KNOWN_HOSTS" "$H/.ssh/known_hosts"
S3DATA=$T/s3/s3rver/permafrost # where s3rver keeps the bucket's objects
SSHD_BIN=$(command -v sshd || echo /usr/sbin/sshd)

# url DRIVER NAME: the repository NAME on that server.
url() {
    case $1 in
    sftp) echo "$SSHD_URL/$2" ;;
    s3) echo "$S3RVER_URL/$2" ;;
    esac
}
# packs_in DRIVER NAME: "COUNT BYTES" of the complete packs of repository NAME, read from
# the server's disk. sftp writes a temporary name and renames; s3rver writes the metadata
# file after the object's last byte.
packs_in() {
    case $1 in
    sftp)
        find "$SSHD_ROOT/$2/data" -type f -regextype posix-extended -regex '.*/[0-9a-f]{64}' \
            -printf '%s\n' 2>/dev/null
        ;;
    s3)
        local m
        find "$S3DATA/$2/data" -name '*._S3rver_metadata.json' 2>/dev/null | while read -r m; do
            stat -c %s "${m%._S3rver_metadata.json}._S3rver_object" 2>/dev/null
        done
        ;;
    esac | awk '{n++; s += $1} END {print n + 0, s + 0}'
}
# wait_new_pack DRIVER NAME PID BEFORE: waits until repository NAME holds more than BEFORE
# complete packs (0) or PID has exited (1).
wait_new_pack() {
    local i
    for i in $(seq 1 2400); do
        kill -0 "$3" 2>/dev/null || return 1
        local n
        n=$(packs_in "$1" "$2" | cut -d' ' -f1)
        [ "$n" -gt "$4" ] && return 0
        sleep 0.05
    done
    return 1
}
# wait_exit PID SECONDS: waits for a background process; RC its status (124: still running,
# then killed).
wait_exit() {
    local i
    for i in $(seq 1 $(($2 * 10))); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$1" 2>/dev/null; then
        kill -9 "$1" 2>/dev/null
        wait "$1" 2>/dev/null
        RC=124
        return
    fi
    wait "$1"
    RC=$?
}
server_kill() { # DRIVER: a crash of the server (and of sshd's sessions)
    case $1 in
    sftp) sshd_kill_all ;;
    s3)
        kill -9 "$S3RVER_PID" 2>/dev/null
        wait "$S3RVER_PID" 2>/dev/null
        S3RVER_PID=
        ;;
    esac
}
server_restart() { # DRIVER: the same server again, same port, keys and data
    case $1 in
    sftp)
        "$SSHD_BIN" -D -e -f "$SSHD_DIR/sshd_config" >>"$SSHD_DIR/sshd.log" 2>&1 &
        SSHD_PID=$!
        harness_wait_port "$SSHD_PORT" 20
        ;;
    s3)
        s3_drop_incomplete
        s3rver_start "$T/s3" "$S3RVER_PORT" permafrost >/dev/null 2>&1
        ;;
    esac
}
# s3_drop_incomplete: S3 never stores a PUT whose body did not arrive whole, and the driver
# relies on that. s3rver does: it writes objects in place and keeps what it got when the
# client dies (or it dies) mid-request. Every object but config and locks is named by the
# SHA-256 of its bytes (docs/FORMAT.md), so the truncated ones are easy to find: remove them,
# as S3 would never have created them, and so are those whose metadata file the kill cut.
# Prints how many there were.
s3_drop_incomplete() {
    local o name n=0
    while read -r o; do
        name=$(basename "${o%._S3rver_object}")
        case "$o" in */data/*/* | */index/* | */snapshots/* | */keys/*) ;; *) continue ;; esac
        [[ $name =~ ^[0-9a-f]{64}$ ]] || continue
        # Whole bytes, but the kill cut the metadata file s3rver writes after them: that
        # object would fail every listing (HTTP 500); S3 would not have stored it either.
        # (s3rver writes it whole with one writeFile: cut, it lacks its closing brace.)
        if [ "$(sha256sum <"$o" | cut -c1-64)" != "$name" ] ||
            [ "$(tail -c1 "${o%._S3rver_object}._S3rver_metadata.json" 2>/dev/null)" != "}" ]; then
            rm -f "$o" "$o.md5" "${o%._S3rver_object}._S3rver_metadata.json"
            n=$((n + 1))
        fi
    done < <(find "$S3DATA" -name '*._S3rver_object')
    echo "$n"
}

# ---- trees -----------------------------------------------------------------------------------
SMALL=$T/small
mkdir -p "$SMALL/docs/deep/er" "$SMALL/empty-dir"
head -c 2500000 /dev/urandom >"$SMALL/random.bin"
seq 1 200000 >"$SMALL/docs/numbers.txt" # compressible, several chunks
printf 'hello\n' >"$SMALL/docs/deep/er/hello.txt"
: >"$SMALL/empty"
printf 'private\n' >"$SMALL/secret"
chmod 600 "$SMALL/secret"
printf '#!/bin/sh\necho hi\n' >"$SMALL/run.sh"
chmod 755 "$SMALL/run.sh"
ln -s docs/numbers.txt "$SMALL/link"
ln "$SMALL/docs/deep/er/hello.txt" "$SMALL/hardlink"
printf 'odd name\n' >"$SMALL/$(printf 'sp ace\ttab')"
touch -d @1600000000.123456789 "$SMALL/docs/numbers.txt"
touch -h -d @1600000001 "$SMALL/link"
if [ "$(id -u)" = 0 ]; then
    printf 'owned\n' >"$SMALL/owned"
    chown 1234:5678 "$SMALL/owned"
fi
touch -d @1650000000 "$SMALL/docs/deep/er" "$SMALL/docs/deep" "$SMALL/docs" "$SMALL"

BIG=$T/big
BIG_BYTES=0
make_big() {
    [ "$BIG_BYTES" -gt 0 ] && return
    local i n=$(((BIG_MB + 9) / 10))
    mkdir -p "$BIG/small"
    for i in $(seq 1 "$n"); do head -c 10M /dev/urandom >"$BIG/f$i"; done
    for i in $(seq 1 50); do printf 'small file %d\n' "$i" >"$BIG/small/s$i"; done
    BIG_BYTES=$(du -sb --apparent-size "$BIG" | cut -f1)
}

# ---- basics: each driver through every read and write command --------------------------------
basics() {
    local d=$1 U
    U=$(url "$d" basics)
    say "$d: basics"
    run "$d-init" pf --repo "$U" init
    rc_is 0 "$d: init"
    local rid
    rid=$(sed -n 's/^created repository \([0-9a-f]*\) .*/\1/p' "$OUT")
    run "$d-init2" pf --repo "$U" init
    rc_is 6 "$d: a second init refuses"
    run "$d-backup" pf --repo "$U" --json backup "$SMALL"
    rc_is 0 "$d: backup of a small tree"
    local sid stored
    sid=$(jget "$OUT" 'd["id"]')
    stored=$(jget "$OUT" 'd["stats"]["bytes_stored"]')
    [ -n "$sid" ] && [ "${stored:-0}" -gt 0 ] && ok "$d: backup JSON names the snapshot and bytes_stored ($stored)" ||
        fail "$d: backup JSON: $(cat "$OUT")"
    run "$d-snapshots" pf --repo "$U" snapshots
    rc_is 0 "$d: snapshots"
    has "$d: snapshots lists it" "${sid:0:8}"
    run "$d-ls" pf --repo "$U" ls latest
    rc_is 0 "$d: ls latest"
    has "$d: ls shows a deep file" " /small/docs/deep/er/hello.txt"
    has "$d: ls shows the symlink" "/small/link"
    run "$d-restore" pf --repo "$U" restore latest --target "$T/restore-$d"
    rc_is 0 "$d: restore latest"
    compare "$d: the restored tree is exactly the original" "$SMALL" "$T/restore-$d/small"
    pf --repo "$U" dump "${sid:0:12}" small/docs/numbers.txt >"$T/dumped" 2>"$L/$d-dump.err"
    RC=$?
    rc_is 0 "$d: dump"
    cmp -s "$T/dumped" "$SMALL/docs/numbers.txt" && ok "$d: dump is byte-exact" || fail "$d: dump differs"
    run "$d-dump404" pf --repo "$U" dump latest small/not-there
    rc_is 13 "$d: dump of a missing path"
    run "$d-check" pf --repo "$U" check --read-data
    rc_is 0 "$d: check --read-data"
    has "$d: check found no damage" "no damage found"
    if [ "$d" = sftp ]; then
        # A temporary file a killed upload left on the server: prune removes it once it is
        # older than a lease, through the SFTP driver's sweep.
        local tmpf
        tmpf="$(ls -d "$SSHD_ROOT"/basics/data/*/ | head -1)$(printf '%064d' 0).tmp-killed"
        head -c 4000 /dev/urandom >"$tmpf"
        touch -d '1 hour ago' "$tmpf"
        run "$d-prune-tmp" pf --repo "$U" --json prune
        rc_is 0 "$d: prune"
        [ "$(jget "$OUT" 'd["tmp_removed"]')" = 1 ] && [ ! -e "$tmpf" ] &&
            ok "$d: prune removed the old temporary file" || fail "$d: prune left $tmpf: $(cat "$OUT")"
    fi

    # The cache: filled for a remote repository; deleting it (or turning it off) changes
    # nothing but where the metadata is read from.
    local cdir
    cdir=$(ls -d "$PERMAFROST_CACHE_DIR/$rid"* 2>/dev/null | head -1)
    if [ -n "$rid" ] && [ -n "$cdir" ] && [ -n "$(ls -A "$cdir")" ]; then
        ok "$d: the cache holds $(ls "$cdir" | wc -l) files for repository $rid"
    else
        fail "$d: no cache for repository '$rid' in $PERMAFROST_CACHE_DIR: $(ls -R "$PERMAFROST_CACHE_DIR" 2>&1 | head -5)"
    fi
    run "$d-backup2" pf --repo "$U" --json backup "$SMALL"
    rc_is 0 "$d: second backup"
    [ "$(jget "$OUT" 'd["stats"]["files_unchanged"] > 0')" = True ] && ok "$d: second backup skips unchanged files" ||
        fail "$d: second backup: $(jget "$OUT" 'd["stats"]')"
    local c
    for c in "snapshots" "--json snapshots" "ls latest" "ls ${sid:0:12}"; do
        pf --repo "$U" $c >"$T/cache-before" 2>&1
        rm -rf "$PERMAFROST_CACHE_DIR"
        pf --repo "$U" $c >"$T/cache-after" 2>&1
        same "$d: '$c' is the same after deleting the cache" "$T/cache-before" "$T/cache-after"
        PERMAFROST_CACHE_DIR=off pf --repo "$U" $c >"$T/cache-off" 2>&1
        same "$d: '$c' is the same with the cache off" "$T/cache-before" "$T/cache-off"
    done
    [ -n "$(ls -A "$PERMAFROST_CACHE_DIR" 2>/dev/null)" ] && ok "$d: the cache is filled again" ||
        fail "$d: the cache stayed empty"
    [ ! -e "$T/home/.cache" ] && [ ! -e off ] && ok "$d: PERMAFROST_CACHE_DIR=off writes no cache" ||
        fail "$d: a cache appeared with the cache off"
    rm -rf "$PERMAFROST_CACHE_DIR" "$T/restore-$d"
    run "$d-restore-nocache" pf --repo "$U" restore "${sid:0:12}" --target "$T/restore-$d"
    rc_is 0 "$d: restore without a cache"
    compare "$d: restore without a cache is exact" "$SMALL" "$T/restore-$d/small"
    rm -rf "$T/restore-$d"
}

# ---- a Mastodon-shaped server through each driver ----------------------------------------------
MASTODON_READY=0
mastodon_servers_up() {
    [ $MASTODON_READY = 1 ] && return 0
    say "starting the Mastodon-shaped servers"
    mastodon_up "$T/old" >"$T/mastodon_up.log" 2>&1 || { tail -20 "$T/mastodon_up.log"; die "cannot start the source server"; }
    mastodon_blank "$T/new" >/dev/null 2>&1 || die "cannot start the blank target servers"
    mastodon_digest "$T/old" >"$T/d.old"
    mastodon_digest "$T/new" >"$T/d.blank"
    MASTODON_READY=1
}
wipe() { # DIR: back to a blank machine
    local dir=$1
    pg_psql "$dir" -d postgres -c "DROP DATABASE IF EXISTS mastodon_production WITH (FORCE)" \
        -c "DROP ROLE IF EXISTS mastodon" -c "DROP ROLE IF EXISTS mastodon_readonly" >/dev/null 2>&1 ||
        die "cannot wipe the database of $dir"
    redis_cli "$dir" flushall >/dev/null || die "cannot flush the Redis of $dir"
    rm -rf "$dir/live"
    mkdir -p "$dir/live"
}
mastodon_roundtrip() {
    local d=$1 U
    U=$(url "$d" mastodon)
    mastodon_servers_up
    say "$d: Mastodon round trip"
    run "$d-m-init" pf --repo "$U" init
    rc_is 0 "$d: init for the Mastodon server"
    run "$d-m-backup" pf --repo "$U" --json backup --live "$T/old/live"
    rc_is 0 "$d: backup --live"
    local c
    for c in secrets postgres redis media; do
        [ "$(jget "$OUT" "d['components']['$c']['status']")" = ok ] || fail "$d: component $c: $(jget "$OUT" 'd["components"]')"
    done
    wipe "$T/new"
    run "$d-m-restore" bash -c '
        . "$1/pg.env"; . "$1/redis.env"
        PERMAFROST_PG_ADMIN_PASSWORD=$PG_SUPERPASS HOME=$2 timeout -k 5 "$3" "$4" --ssh-key "$5" \
            --repo "$6" restore latest --live "$1/live" --pg-host 127.0.0.1 --pg-port "$PG_PORT" \
            --pg-admin-user "$PG_SUPERUSER" --redis-host 127.0.0.1 --redis-port "$REDIS_PORT"
    ' _ "$T/new" "$H" "$CMD_TIMEOUT" "$PF" "$SSHD_KEY" "$U"
    rc_is 0 "$d: restore --live onto blank servers"
    mastodon_digest "$T/new" >"$T/d.new"
    same "$d: the restored server has the original's digest ($(grep -c . "$T/d.old") lines)" "$T/d.old" "$T/d.new"
}

# ---- errors an operator meets ------------------------------------------------------------------
errors() {
    say "errors"
    local S=$(url sftp basics) S3=$(url s3 basics)
    [ "$(nsnap "$S")" = 2 ] || pf --repo "$S" init >/dev/null 2>&1 # when basics did not run

    ssh-keygen -q -t ed25519 -N '' -f "$T/wrong_key"
    run e-wrongkey pf --repo "$S" snapshots --ssh-key "$T/wrong_key"
    rc_is 12 "sftp wrong SSH key: exit 12"
    one_line "sftp wrong SSH key"
    has "sftp wrong SSH key: names the key" "$T/wrong_key"
    has "sftp wrong SSH key: says what to do" "authorized_keys"

    cp "$H/.ssh/known_hosts" "$T/known_hosts.good"
    ssh-keygen -q -t ed25519 -N '' -f "$T/other_host"
    echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$T/other_host.pub")" >"$H/.ssh/known_hosts"
    run e-mismatch pf --repo "$S" snapshots
    rc_is 12 "sftp host key mismatch: exit 12"
    one_line "sftp host key mismatch"
    has "sftp host key mismatch: says it does not match" "does not match"
    has "sftp host key mismatch: shows the server's fingerprint" "$SSHD_HOST_KEY_FP"
    run e-mismatch-accept pf --repo "$S" --ssh-accept-new snapshots
    rc_is 12 "sftp host key mismatch: --ssh-accept-new does not override a changed key"
    grep -qF "$(cut -d' ' -f2 "$T/other_host.pub")" "$H/.ssh/known_hosts" &&
        ! grep -qF "$(cut -d' ' -f2 "$SSHD_DIR/host_ed25519.pub")" "$H/.ssh/known_hosts" &&
        ok "sftp host key mismatch: known_hosts untouched" || fail "sftp host key mismatch: known_hosts changed"

    : >"$H/.ssh/known_hosts"
    run e-unknown pf --repo "$S" snapshots
    rc_is 12 "sftp unknown host key: exit 12"
    one_line "sftp unknown host key"
    has "sftp unknown host key: shows the fingerprint" "$SSHD_HOST_KEY_FP"
    has "sftp unknown host key: names --ssh-accept-new" "--ssh-accept-new"
    run e-accept pf --repo "$S" --ssh-accept-new snapshots
    rc_is 0 "sftp unknown host key with --ssh-accept-new: accepted"
    run e-accepted pf --repo "$S" snapshots
    rc_is 0 "sftp: the recorded host key is trusted next time"
    cp "$T/known_hosts.good" "$H/.ssh/known_hosts"

    run e-s3creds env AWS_ACCESS_KEY_ID=NOT-THE-KEY "$PF" --repo "$S3" snapshots
    rc_is 12 "s3 wrong credentials: exit 12"
    one_line "s3 wrong credentials"
    has "s3 wrong credentials: names the variables" "AWS_ACCESS_KEY_ID"
    run e-s3nocreds env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$PF" --repo "$S3" snapshots
    rc_is 12 "s3 no credentials: exit 12"
    one_line "s3 no credentials"
    has "s3 no credentials: names the variables" "AWS_ACCESS_KEY_ID"

    run e-nobucket pf --repo "s3:$S3RVER_ENDPOINT/no-such-bucket/x" snapshots
    rc_is 10 "s3 missing bucket: exit 10"
    one_line "s3 missing bucket"
    has "s3 missing bucket: says it does not exist" "does not exist"
    has "s3 missing bucket: names the bucket" "no-such-bucket"
    run e-nobucket-init pf --repo "s3:$S3RVER_ENDPOINT/no-such-bucket/x" init
    rc_is 10 "s3 missing bucket: init does not create it (exit 10)"
    has "s3 missing bucket: init says create it first" "create it first"
    [ ! -e "$T/s3/s3rver/no-such-bucket" ] && ok "s3 missing bucket: still missing" || fail "s3 missing bucket: init created it"

    run e-norepo-sftp pf --repo "$(url sftp nothing-here)" snapshots
    rc_is 10 "sftp: no repository at that path: exit 10"
    one_line "sftp no repository"
    run e-norepo-s3 pf --repo "$(url s3 nothing-here)" snapshots
    rc_is 10 "s3: no repository under that prefix: exit 10"
    one_line "s3 no repository"
    PERMAFROST_PASSWORD=wrong-passphrase run e-pass-sftp pf --repo "$S" snapshots
    rc_is 12 "sftp wrong passphrase: exit 12"
    one_line "sftp wrong passphrase"
    has "sftp wrong passphrase: says so" "wrong passphrase"
    PERMAFROST_PASSWORD=wrong-passphrase run e-pass-s3 pf --repo "$S3" snapshots
    rc_is 12 "s3 wrong passphrase: exit 12"
    one_line "s3 wrong passphrase"

    local closed
    closed=$(harness_free_port)
    run e-closed-sftp pf --repo "sftp://$(id -un)@127.0.0.1:$closed/x" snapshots
    rc_is 7 "sftp nothing listening: exit 7"
    has "sftp nothing listening: names the address" "port $closed"
    run e-closed-s3 pf --repo "s3:http://127.0.0.1:$closed/permafrost/x" snapshots
    rc_is 7 "s3 nothing listening: exit 7"
    has "s3 nothing listening: names the address" "127.0.0.1:$closed"
}

# ---- copy: local -> S3, another passphrase ----------------------------------------------------
copy_part() {
    say "copy: local -> s3"
    local LOCAL=$T/local D
    D=$(url s3 copy)
    run c-init-local env PERMAFROST_PASSWORD=local-pass "$PF" --repo "$LOCAL" init
    rc_is 0 "copy: local repository"
    run c-b1 env PERMAFROST_PASSWORD=local-pass "$PF" --repo "$LOCAL" --json backup "$SMALL"
    local S1
    S1=$(jget "$OUT" 'd["id"]')
    run c-r1 env PERMAFROST_PASSWORD=local-pass "$PF" --repo "$LOCAL" restore "$S1" --target "$T/c-first"
    cp -a "$SMALL" "$T/small2"
    head -c 300000 /dev/urandom >"$T/small2/added.bin"
    printf 'changed\n' >>"$T/small2/docs/deep/er/hello.txt"
    rm "$T/small2/empty"
    run c-b2 env PERMAFROST_PASSWORD=local-pass "$PF" --repo "$LOCAL" --json backup "$T/small2"
    rc_is 0 "copy: two local snapshots"
    run c-init-dst env PERMAFROST_PASSWORD=s3-copy-pass "$PF" --repo "$D" init
    rc_is 0 "copy: destination on S3 with its own passphrase"

    run c-wrongpass env PERMAFROST_PASSWORD=local-pass PERMAFROST_TO_PASSWORD=local-pass "$PF" --repo "$LOCAL" copy --to "$D"
    rc_is 12 "copy with the wrong destination passphrase: exit 12"
    has "copy with the wrong destination passphrase: says destination" "destination"
    run c-nopass env PERMAFROST_PASSWORD=local-pass "$PF" --repo "$LOCAL" copy --to "$D"
    rc_is 2 "copy without a destination passphrase (no terminal): usage error"

    run c-copy1 env PERMAFROST_PASSWORD=local-pass PERMAFROST_TO_PASSWORD=s3-copy-pass "$PF" --repo "$LOCAL" --json copy --to "$D"
    rc_is 0 "copy --to s3"
    [ "$(jget "$OUT" 'd["copied"]')" = 2 ] && [ "$(jget "$OUT" 'd["bytes_uploaded"] > 0')" = True ] &&
        ok "copy: 2 snapshots, $(jget "$OUT" 'd["bytes_uploaded"]') bytes uploaded" || fail "copy: $(cat "$OUT")"
    run c-copy2 env PERMAFROST_PASSWORD=local-pass PERMAFROST_TO_PASSWORD=s3-copy-pass "$PF" --repo "$LOCAL" --json copy --to "$D"
    rc_is 0 "second copy"
    [ "$(jget "$OUT" 'd["copied"]')" = 0 ] && [ "$(jget "$OUT" 'd["skipped"]')" = 2 ] &&
        [ "$(jget "$OUT" 'd["blobs_uploaded"]')" = 0 ] && [ "$(jget "$OUT" 'd["bytes_uploaded"]')" = 0 ] &&
        ok "second copy copies nothing" || fail "second copy: $(cat "$OUT")"
    run c-copy2h env PERMAFROST_PASSWORD=local-pass PERMAFROST_TO_PASSWORD=s3-copy-pass "$PF" --repo "$LOCAL" copy --to "$D"
    has "second copy says so" "0 snapshots copied, 2 already there"

    run c-snaps env PERMAFROST_PASSWORD=s3-copy-pass "$PF" --repo "$D" --json snapshots
    rc_is 0 "copy: the destination opens with its own passphrase"
    local D1 D2
    D1=$(jget "$OUT" '[s["id"] for s in d if s["stats"].get("copied_from") == "'"$S1"'"][0]')
    D2=$(jget "$OUT" 'd[-1]["id"]')
    [ "$(jget "$OUT" 'len(d)')" = 2 ] && [ -n "$D1" ] && ok "copy: the destination holds 2 snapshots, recording their source" ||
        fail "copy: destination snapshots: $(cat "$OUT")"
    run c-rl env PERMAFROST_PASSWORD=s3-copy-pass "$PF" --repo "$D" restore "$D2" --target "$T/c-latest"
    rc_is 0 "copy: restore of the copied latest snapshot"
    compare "copy: the copied latest snapshot restores exactly" "$T/small2" "$T/c-latest/small2"
    run c-rf env PERMAFROST_PASSWORD=s3-copy-pass "$PF" --repo "$D" restore "$D1" --target "$T/c-first-copy"
    rc_is 0 "copy: restore of the copied first snapshot"
    compare "copy: the copied first snapshot restores exactly" "$T/c-first/small" "$T/c-first-copy/small"
    compare "copy: ... which is the original tree" "$SMALL" "$T/c-first-copy/small"
    rm -rf "$T/c-first" "$T/c-first-copy" "$T/c-latest"

    # An interrupted copy of a bigger snapshot resumes.
    make_big
    run c-bbig env PERMAFROST_PASSWORD=local-pass "$PF" --repo "$LOCAL" --json backup "$BIG"
    rc_is 0 "copy: a ${BIG_MB} MB snapshot in the local repository"
    local before pid
    before=$(packs_in s3 copy | cut -d' ' -f1)
    PERMAFROST_PASSWORD=local-pass PERMAFROST_TO_PASSWORD=s3-copy-pass "$PF" --repo "$LOCAL" copy --to "$D" \
        >"$L/c-killed.out" 2>&1 &
    pid=$!
    BG_PIDS+=("$pid")
    if wait_new_pack s3 copy "$pid" "$before"; then
        kill -9 "$pid"
        wait "$pid" 2>/dev/null
        local left cut
        cut=$(s3_drop_incomplete)
        left=$(packs_in s3 copy)
        ok "copy killed (-9) after its first new pack: $((${left% *} - before)) new packs on the server ($cut cut short by the kill, removed)"
    else
        wait "$pid"
        fail "copy: the copy ended (exit $?) before a pack was uploaded: $(tail -3 "$L/c-killed.out")"
    fi
    [ "$(PERMAFROST_PASSWORD=s3-copy-pass nsnap "$D")" = 2 ] && ok "killed copy: no snapshot written" ||
        fail "killed copy: snapshots: $(PERMAFROST_PASSWORD=s3-copy-pass nsnap "$D")"
    run c-resume env PERMAFROST_PASSWORD=local-pass PERMAFROST_TO_PASSWORD=s3-copy-pass "$PF" --repo "$LOCAL" --json copy --to "$D"
    rc_is 0 "copy after the kill: finishes"
    local up present
    up=$(jget "$OUT" 'd["bytes_uploaded"]')
    present=$(jget "$OUT" 'd["blobs_present"]')
    [ "$(jget "$OUT" 'd["copied"]')" = 1 ] && ok "resumed copy copied the one missing snapshot" || fail "resumed copy: $(cat "$OUT")"
    [ "${present:-0}" -gt 0 ] && [ "${up:-$BIG_BYTES}" -lt $((BIG_BYTES - 4000000)) ] &&
        ok "resumed copy reused what the killed one uploaded: $present blobs present, $up of $BIG_BYTES bytes uploaded" ||
        fail "resumed copy reused nothing: $(cat "$OUT")"
    run c-rbig env PERMAFROST_PASSWORD=s3-copy-pass "$PF" --repo "$D" restore latest --target "$T/c-big"
    rc_is 0 "resumed copy: restore"
    compare "resumed copy: the big snapshot restores exactly" "$BIG" "$T/c-big/big"
    rm -rf "$T/c-big"
    run c-check env PERMAFROST_PASSWORD=s3-copy-pass "$PF" --repo "$D" check --read-data
    rc_is 0 "resumed copy: check --read-data of the destination"
}

# ---- the server killed during a backup ----------------------------------------------------------
kill_part() {
    local d=$1 U
    U=$(url "$d" killed)
    make_big
    say "$d: server killed during a ${BIG_MB} MB backup"
    run "$d-k-init" pf --repo "$U" init
    rc_is 0 "$d: init"
    pf --repo "$U" backup "$BIG" >"$L/$d-k-backup.out" 2>"$L/$d-k-backup.err" &
    local pid=$!
    BG_PIDS+=("$pid")
    local killed=0 t1 t2
    if wait_new_pack "$d" killed "$pid" 0; then
        server_kill "$d" 2>/dev/null # (no "Killed" notice from the shell)
        killed=1
    fi
    t1=$(date +%s.%N)
    wait_exit "$pid" 120
    t2=$(date +%s.%N)
    OUT=$L/$d-k-backup.out ERR=$L/$d-k-backup.err
    if [ $killed = 0 ]; then
        fail "$d: the backup ended (exit $RC) before a pack was uploaded: make OFFSITE_BIG_MB larger"
        show
        return
    fi
    if [ $RC -ne 0 ] && [ $RC -lt 124 ]; then
        ok "$d: backup failed (exit $RC) $(awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.1f", b - a}') s after the server died"
    else
        fail "$d: backup with the server killed: exit $RC"
        show
    fi
    local why
    why=$(grep -v '^permafrost: warning: ' "$ERR")
    if [ "$(grep -c . <<<"$why")" = 1 ] && grep -q '^permafrost: .*no snapshot' <<<"$why"; then
        ok "$d: one error line says no snapshot was written: $(cut -c1-170 <<<"$why")"
    else
        fail "$d: the error lines: $why"
    fi
    server_restart "$d" >/dev/null || die "$d: cannot restart the server"
    local left
    left=$(packs_in "$d" killed)
    ok "$d: server restarted; ${left% *} packs (${left#* } bytes) of the failed backup are there"
    [ "$(nsnap "$U")" = 0 ] && ok "$d: the failed backup wrote no snapshot" || fail "$d: snapshots after the failure: $(nsnap "$U")"
    run "$d-k-check" pf --repo "$U" check
    rc_is 0 "$d: check passes after the failed backup"
    run "$d-k-backup2" pf --repo "$U" --json backup "$BIG"
    rc_is 0 "$d: the next backup succeeds"
    local stored bytes=${left#* }
    stored=$(jget "$OUT" 'int(d["stats"]["bytes_stored"])')
    echo "     (the next backup stored ${stored:-?} bytes of $BIG_BYTES; $bytes were on the server)"
    if [ -n "$stored" ] && [ "$stored" -lt "$BIG_BYTES" ] &&
        [ $((stored + bytes)) -le $((BIG_BYTES + BIG_BYTES / 50 + 1048576)) ]; then
        ok "$d: the next backup reused the uploaded packs"
    else
        fail "$d: the next backup stored $stored bytes although $bytes were there"
    fi
    run "$d-k-restore" pf --repo "$U" restore latest --target "$T/k-$d"
    rc_is 0 "$d: restore after the recovery"
    compare "$d: the recovered backup restores exactly" "$BIG" "$T/k-$d/big"
    rm -rf "$T/k-$d"
    run "$d-k-check2" pf --repo "$U" check
    rc_is 0 "$d: check after the recovery"
}

# ---- cut: sessions dropped in the middle of a restore's pack reads -----------------------------
# cut_server MARKER: a second sshd whose sftp subsystem (tests/harness/sftp_cut.py) drops the
# session at a READ 1 MiB or more into a file; it serves the same files as the first one (the
# repository is named by its absolute path). Prints its port; the first server's variables
# are kept, the second's pid is in CUT_PID and its known_hosts in $T/cut-home/.ssh.
cut_server() {
    local saved v
    saved=$(for v in SSHD_PID SSHD_PORT SSHD_DIR SSHD_ROOT SSHD_URL SSHD_KEY SSHD_KNOWN_HOSTS SSHD_HOST_KEY_FP; do
        printf '%s=%q\n' "$v" "${!v}"
    done)
    rm -rf "$T/sshd-cut"
    if ! SSHD_SFTP_SUBSYSTEM="$SRC/tests/harness/sftp_cut.py 5 $1 1048576" \
        sshd_start "$T/sshd-cut" >"$L/sshd-cut-start" 2>&1; then
        eval "$saved"
        return 1
    fi
    CUT_PID=$SSHD_PID CUT_PORT=$SSHD_PORT
    cp "$SSHD_KNOWN_HOSTS" "$T/cut-home/.ssh/known_hosts"
    eval "$saved"
    cat "$SSHD_KEY.pub" >>"$T/sshd-cut/authorized_keys" # the test's key logs in there too
}
cut_stop() { # the second sshd and the sessions it forked
    local k
    for k in $(ps -o pid= --ppid "$CUT_PID" 2>/dev/null); do kill -9 "$k" 2>/dev/null; done
    kill -9 "$CUT_PID" 2>/dev/null
    wait "$CUT_PID" 2>/dev/null
}
cut_part() {
    local U=$(url sftp cut) tree=$T/cuttree i
    say "sftp: sessions dropped during a restore"
    mkdir -p "$tree" "$T/cut-home/.ssh"
    chmod 700 "$T/cut-home" "$T/cut-home/.ssh"
    for i in 1 2 3; do head -c 12M /dev/urandom >"$tree/f$i"; done
    printf 'small\n' >"$tree/small"
    run cut-init pf --repo "$U" init
    rc_is 0 "cut: init"
    run cut-backup pf --repo "$U" backup "$tree"
    rc_is 0 "cut: backup of 36 MB"
    # (the repository through the cutting server: the same directory, another port)
    local CU="sftp://$(id -un)@127.0.0.1:"
    cut_server "$T/cut-marker" || { fail "cut: cannot start the second sshd: $(tail -3 "$L/sshd-cut-start")"; return; }
    CU="$CU$CUT_PORT$SSHD_ROOT/cut"
    run cut-restore env HOME="$T/cut-home" timeout -k 5 "$CMD_TIMEOUT" "$PF" --ssh-key "$SSHD_KEY" \
        --repo "$CU" --connections 4 restore latest --target "$T/cut-restore"
    rc_is 0 "cut: restore through 4 connections with a session dropped mid-read"
    [ -e "$T/cut-marker" ] && ok "cut: a session was dropped during a pack read" ||
        fail "cut: no session was dropped (the cut never happened)"
    compare "cut: the restored files are identical" "$tree" "$T/cut-restore/cuttree"
    cut_stop
    # A server that drops every session at its first pack read: the restore gives up within
    # the retry budget with one line, and leaves no snapshot's worth of half files claimed.
    cut_server - || { fail "cut: cannot start the second sshd: $(tail -3 "$L/sshd-cut-start")"; return; }
    CU="sftp://$(id -un)@127.0.0.1:$CUT_PORT$SSHD_ROOT/cut"
    local t1 t2
    t1=$(date +%s)
    run cut-fail env HOME="$T/cut-home" timeout -k 5 120 "$PF" --ssh-key "$SSHD_KEY" \
        --repo "$CU" --connections 2 restore latest --target "$T/cut-restore2"
    t2=$(date +%s)
    if [ $RC -ne 0 ] && [ $RC -lt 124 ]; then
        ok "cut: every session dropped: restore failed (exit $RC) after $((t2 - t1)) s"
    else
        fail "cut: every session dropped: exit $RC"
        show
    fi
    local why
    why=$(grep -v '^permafrost: warning: \|^permafrost: latest: ' "$ERR")
    if [ "$(grep -c . <<<"$why")" = 1 ] && grep -q 'connection failed.*gave up' <<<"$why"; then
        ok "cut: one error line about the connection: $(cut -c1-170 <<<"$why")"
    else
        fail "cut: the error lines: $why"
    fi
    cut_stop
    rm -rf "$T/cut-restore" "$T/cut-restore2" "$tree"
}

for d in sftp s3; do part basics && basics "$d"; done
for d in sftp s3; do part mastodon && mastodon_roundtrip "$d"; done
part errors && errors
part copy && copy_part
for d in s3 sftp; do part kill && kill_part "$d"; done
part cut && cut_part

say "done"
if [ $FAILED = 0 ]; then
    echo "all off-site tests passed"
else
    echo "$FAILED off-site test(s) failed"
    exit 1
fi

#!/usr/bin/env bash
# `permafrost serve` behind a real sshd on loopback, reached through ssh:// repositories:
#   - an append-only key (forced command `permafrost serve --append-only --restrict-to-path
#     DIR`): init, backup, check --read-data, restore (exact), copy into it, backup --live of
#     a Mastodon-shaped server (tests/harness/mastodon.sh) and restore --live of it onto
#     blank servers (the digest equal); a client that
#     tries to delete a pack, overwrite an index file, delete a snapshot or sweep is refused
#     with one clear line and the repository is byte-for-byte unchanged; forget and prune
#     are refused before they start; --restrict-to-path escapes ('..', a path outside, a
#     symbolic link inside pointing out) are refused;
#   - the trusted side (a second key without --append-only, and the local path): prune
#     refuses a garbage snapshot added through the append-only key and removes nothing;
#     once it is gone, forget --prune works and what the real snapshots need survives; a
#     snapshot the attacker made with the repository key only adds references;
#   - the store conformance suite against ssh:// through serve;
#   - a wrong SSH key: exit 7 and ssh's own words.
# Prints ok/FAIL lines; exits 1 when anything failed.
set -uo pipefail

SRC=${PF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PF=${PERMAFROST:-$SRC/permafrost}
LIB=${PF_TESTLIB:-$SRC/tests/lib}
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$SRC/$BUILD" ;; esac
PFSTORE=$BUILD/tests/pfstore
CONF=$BUILD/tests/test_store_conformance
. "$SRC/tests/harness/sshd.sh"
. "$SRC/tests/harness/mastodon.sh"

for t in "$PFSTORE" "$CONF"; do
    [ -x "$t" ] || (cd "$SRC" && make -s BUILD="$BUILD" "$t") || { echo "FAIL serve: cannot build $t"; exit 1; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/pf-serve.XXXXXX")
chmod 755 "$T"
harness_on_exit "rm -rf '$T'"
L=$T/log
mkdir -p "$L"
. "$SRC/tests/lib/counting.sh"
. "$SRC/tests/lib/serve.sh"

unset SSH_AUTH_SOCK PERMAFROST_REPO PERMAFROST_PASSWORD_FILE PERMAFROST_TO_PASSWORD_FILE
: >"$T/empty.conf"
export PERMAFROST_CONFIG=$T/empty.conf PERMAFROST_CACHE_DIR=$T/cache
export PERMAFROST_PASSWORD=serve-test-passphrase PERMAFROST_RETRY_BASE_MS=20

serve_sshd_start serve
ROOT=$T/srv
mkdir -p "$ROOT" "$T/outside"
REPO=$ROOT/mastodon
ssh-keygen -q -t ed25519 -N '' -C trusted -f "$T/trusted_key"
{
    serve_key_line "$SSHD_KEY.pub" --append-only --restrict-to-path "$ROOT"
    serve_key_line "$T/trusted_key.pub" --restrict-to-path "$ROOT"
} >"$SSHD_DIR/authorized_keys"
APPEND_SSH="$SSH_BASE -i $SSHD_KEY"
TRUSTED_SSH="$SSH_BASE -i $T/trusted_key"
HOSTPART="ssh://$(id -un)@127.0.0.1:$SSHD_PORT"
URL=$HOSTPART$REPO
# pfa/pft: permafrost through the append-only key / the trusted key.
pfa() { PERMAFROST_SSH=$APPEND_SSH timeout -k 5 120 "$PF" "$@"; }
pft() { PERMAFROST_SSH=$TRUSTED_SSH timeout -k 5 120 "$PF" "$@"; }

# ---- the files to back up: a few small ones and one of 3 MiB (several DATA frames) ----
S=$T/src
mkdir -p "$S/sub"
echo "first" >"$S/a.txt"
printf 'x%.0s' $(seq 1000) >"$S/sub/b.txt"
head -c 3145728 /dev/urandom >"$S/sub/big.bin"
ln -s a.txt "$S/link"

# ---- through the append-only key: everything that only adds works ----
run init pfa --repo "$URL" init
rc_is 0 "init through the append-only server (it only adds)"
run backup1 pfa --repo "$URL" backup "$S"
rc_is 0 "backup through the append-only server"
echo "second" >>"$S/a.txt"
run backup2 pfa --repo "$URL" backup "$S"
rc_is 0 "a second backup (unchanged files reused)"
run check1 pfa --repo "$URL" check --read-data
rc_is 0 "check --read-data through the append-only server"
run restore1 pfa --repo "$URL" restore latest --target "$T/r1"
rc_is 0 "restore through the append-only server"
if python3 "$LIB/compare_trees.py" "$S" "$T/r1/src" >"$L/cmp1" 2>&1; then ok "restored exactly"; else
    fail "restore differs: $(head -5 "$L/cmp1")"
fi
export PERMAFROST_TO_PASSWORD=$PERMAFROST_PASSWORD
"$PF" --repo "$T/local" init >/dev/null 2>&1 && "$PF" --repo "$T/local" backup "$S/sub" >/dev/null 2>&1 ||
    fail "local repository for copy"
run copy pfa --repo "$T/local" copy --to "$URL"
rc_is 0 "copy into the append-only server"
NSNAP=$(pfa --repo "$URL" --json snapshots | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$NSNAP" = 3 ] && ok "3 snapshots there" || fail "wanted 3 snapshots, got $NSNAP"

# backup --live of a Mastodon-shaped server (PostgreSQL, Redis, secrets, media) through it.
if mastodon_up "$T/masto" >"$L/mastodon-up" 2>&1; then
    run live pfa --repo "$URL" --json backup --live "$T/masto/live"
    rc_is 0 "backup --live through the append-only server"
    for c in secrets postgres redis media; do
        st=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['components']['$c']['status'])" "$OUT" 2>/dev/null)
        [ "$st" = ok ] && ok "backup --live: $c ok" || fail "backup --live: component $c: $st"
    done
    # ...and restore --live from it onto blank servers: reading needs nothing refused.
    if mastodon_blank "$T/masto-new" >"$L/mastodon-blank" 2>&1; then
        (
            . "$T/masto-new/pg.env"
            . "$T/masto-new/redis.env"
            PERMAFROST_PG_ADMIN_PASSWORD=$PG_SUPERPASS pfa --repo "$URL" restore latest \
                --live "$T/masto-new/live" --pg-host 127.0.0.1 --pg-port "$PG_PORT" \
                --pg-admin-user "$PG_SUPERUSER" --redis-host 127.0.0.1 --redis-port "$REDIS_PORT"
        ) >"$L/restore-live.out" 2>"$L/restore-live.err"
        RC=$? OUT=$L/restore-live.out ERR=$L/restore-live.err
        rc_is 0 "restore --live through the append-only server"
        mastodon_digest "$T/masto" >"$T/digest.old"
        mastodon_digest "$T/masto-new" >"$T/digest.new"
        if diff -u "$T/digest.old" "$T/digest.new" >"$L/digest.diff"; then
            ok "the restored server has the original's digest"
        else
            fail "the restored server differs: $(head -20 "$L/digest.diff")"
        fi
    else
        fail "cannot start the blank target servers: $(tail -3 "$L/mastodon-blank")"
    fi
else
    fail "cannot start the Mastodon-shaped server: $(tail -3 "$L/mastodon-up")"
fi

# ---- what an attacker on the backed-up server would try ----
fingerprint "$REPO" >"$T/fp.before"
PACK=$(cd "$REPO" && ls data/*/* | head -1)
INDEX=$(cd "$REPO" && ls index/* | head -1)
SNAP=$(cd "$REPO" && ls snapshots/* | head -1)
echo "garbage" >"$T/garbage"
PERMAFROST_SSH=$APPEND_SSH run rmpack "$PFSTORE" "$URL" rm "$PACK"
refused_line "delete a pack" 23 "remove $PACK: refused by the append-only server at $URL" \
    "run forget/prune from a trusted machine"
PERMAFROST_SSH=$APPEND_SSH run putindex "$PFSTORE" "$URL" put "$INDEX" "$T/garbage"
refused_line "overwrite an index file" 23 "put $INDEX: refused by the append-only server" \
    "exists with other content"
PERMAFROST_SSH=$APPEND_SSH run rmsnap "$PFSTORE" "$URL" rm "$SNAP"
refused_line "delete a snapshot" 23 "remove $SNAP: refused by the append-only server"
PERMAFROST_SSH=$APPEND_SSH run rmconfig "$PFSTORE" "$URL" put config "$T/garbage"
refused_line "overwrite the config" 23 "put config: refused by the append-only server"
PERMAFROST_SSH=$APPEND_SSH run sweep "$PFSTORE" "$URL" sweep
refused_line "sweep temporary files" 23 "refused by the append-only server"
cp "$REPO/$SNAP" "$T/same"
PERMAFROST_SSH=$APPEND_SSH run putsame "$PFSTORE" "$URL" put "$SNAP" "$T/same"
rc_is 0 "a put of the same bytes again (a retried put) succeeds"
OLDKEY=$(cd "$REPO" && ls keys | head -1)
echo "second-passphrase" >"$T/pass2"
run keyadd pfa --repo "$URL" key add --new-password-file "$T/pass2"
rc_is 0 "key add through the append-only server (it only adds)"
fingerprint "$REPO" >"$T/fp.before"
PERMAFROST_PASSWORD=second-passphrase run keyrm pfa --repo "$URL" key remove "$OLDKEY"
[ "$RC" != 0 ] && grep -qF "refused by the append-only server" "$ERR" && ok "key remove refused" ||
    { fail "key remove: exit $RC"; show; }
run forget pfa --repo "$URL" forget --keep-last 1
refused_line "forget through the append-only server" 12 "forget: refused by the append-only server at $URL" \
    "run forget/prune from a trusted machine"
run forgetp pfa --repo "$URL" forget --keep-last 1 --prune
refused_line "forget --prune through the append-only server" 12 "refused by the append-only server"
run prune pfa --repo "$URL" prune
refused_line "prune through the append-only server" 12 "prune: refused by the append-only server"
fingerprint "$REPO" >"$T/fp.after"
if cmp -s "$T/fp.before" "$T/fp.after"; then ok "the repository is unchanged after the attempts"; else
    fail "the repository changed: $(diff "$T/fp.before" "$T/fp.after" | head -5)"
fi
run check2 pfa --repo "$URL" check --read-data
rc_is 0 "check --read-data passes after the attempts"
rm -rf "$T/r2"
SNAPID=$(pfa --repo "$URL" --json snapshots | python3 -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin) if s["paths"]==[sys.argv[1]]][-1])' "$S")
run restore2 pfa --repo "$URL" restore "$SNAPID" --target "$T/r2"
python3 "$LIB/compare_trees.py" "$S" "$T/r2/src" >"$L/cmp2" 2>&1 && ok "restore still exact" ||
    fail "restore after the attempts differs: $(head -5 "$L/cmp2")"

# ---- --restrict-to-path ----
ln -s "$T/outside" "$ROOT/link"
for p in "$T/outside/repo" "$ROOT/../outside/repo" "$ROOT/link/repo"; do
    run escape pfa --repo "$HOSTPART$p" init
    refused_line "repository $p refused" 12 "$p"
done
[ -z "$(ls -A "$T/outside")" ] && ok "nothing was written outside $ROOT" || fail "written outside: $(ls -A "$T/outside")"

# ---- forged snapshots, and the trusted side ----
# Garbage under a snapshot name: the append-only server takes it (it only adds)...
GID=$(sha256sum "$T/garbage" | cut -c1-64)
PERMAFROST_SSH=$APPEND_SSH run forged "$PFSTORE" "$URL" put "snapshots/$GID" "$T/garbage"
rc_is 0 "a garbage snapshot can be added through the append-only key"
fingerprint "$REPO" >"$T/fp.forged"
# ...and a trusted prune (on the backup host: the local path) refuses to decide from it.
run tprune "$PF" --repo "$REPO" prune
if [ "$RC" != 0 ] && grep -qF "nothing was removed" "$ERR"; then ok "trusted prune refuses: $(cut -c1-150 "$ERR")"; else
    fail "trusted prune with a garbage snapshot: exit $RC"
    show
fi
fingerprint "$REPO" >"$T/fp.tprune"
cmp -s "$T/fp.forged" "$T/fp.tprune" && ok "it removed nothing" || fail "trusted prune removed something"
# The trusted key may remove (no --append-only), through the same restriction.
PERMAFROST_SSH=$TRUSTED_SSH run trm "$PFSTORE" "$URL" rm "snapshots/$GID"
rc_is 0 "the trusted key removes the garbage snapshot"
# A snapshot the attacker makes with the repository key (an empty backup) only adds
# references: prune keeps all the real snapshots need.
mkdir -p "$T/empty"
run attacker pfa --repo "$URL" backup "$T/empty"
rc_is 0 "an attacker's snapshot with the repository key"
# Index files that list every real pack with a made-up blob only (sealed with the
# repository key, which the backed-up server holds). A prune that believed the first index
# file listing a pack would delete the packs whenever a forged file is listed first (the
# order of a directory listing; tests/unit/repo/test_prune_forged.c makes that order
# certain). Here: the whole path through the append-only server, then trusted prunes.
PERMAFROST_SSH=$APPEND_SSH run forge "$PFSTORE" "$URL" forge-index 20
rc_is 0 "20 forged index files added through the append-only key"
run tforget pft --repo "$URL" forget --keep-last 2 --prune
rc_is 0 "trusted forget --prune (the trusted key, no --append-only)"
run tprune2 "$PF" --repo "$REPO" prune
rc_is 0 "trusted prune on the backup host"
run check3 "$PF" --repo "$REPO" check --read-data
rc_is 0 "check --read-data after the trusted prune"
rm -rf "$T/r3"
run restore3 pfa --repo "$URL" restore "$SNAPID" --target "$T/r3"
python3 "$LIB/compare_trees.py" "$S" "$T/r3/src" >"$L/cmp3" 2>&1 && ok "the real snapshot restores exactly after prune" ||
    fail "restore after the trusted prune differs: $(head -5 "$L/cmp3") $(cat "$ERR")"

# ---- a wrong SSH key ----
ssh-keygen -q -t ed25519 -N '' -f "$T/wrong_key"
PERMAFROST_SSH="$SSH_BASE -i $T/wrong_key" run wrong "$PF" --repo "$URL" snapshots
refused_line "wrong SSH key" 7 "$URL: connection failed" "Permission denied"

# ---- conformance, through serve without --append-only ----
start=$(date +%s.%N)
if PERMAFROST_SSH=$TRUSTED_SSH PERMAFROST_TEST_STORE_URLS="$HOSTPART$ROOT/conformance" "$CONF" >"$L/conformance.log" 2>&1; then
    ok "store conformance (mem, local, ssh://) in $(echo "$(date +%s.%N) - $start" | bc | cut -c1-5) s"
else
    fail "conformance: see below"
    grep -v '^\[ RUN\|OK \]' "$L/conformance.log" | tail -30
fi

if [ "$FAILED" -gt 0 ]; then
    echo "serve: $FAILED check(s) failed"
    exit 1
fi
echo "serve: all checks passed"

#!/usr/bin/env bash
# Write-only keys (issue 13 part 2, docs/SECURITY.md §6) behind a real sshd: the backed-up
# server holds an append-only SSH key (forced command `permafrost serve --append-only`) and
# a write-only key; the trusted side holds the full key, on the backup host (local path).
#   - key add --write-only (format 2 -> 3); the same passphrase as a full key is refused;
#   - with the write-only key, through the append-only server: backup deduplicates against
#     the full key's earlier snapshot and a second backup adds nothing (unchanged files
#     found from its own cache, which keeps only the newest snapshot), wal-push (twice: "already archived"), backup --live of a
#     Mastodon-shaped server;
#   - restore, ls, dump, check --read-data, key export --paper, snapshots, prune, forget,
#     key add: each one line naming the write-only key, exit 12, nothing changed;
#   - the full key: check --read-data, an exact restore, wal-fetch gives the same bytes;
#   - the attacker (append-only + write-only): a snapshot referencing nothing, one naming
#     a real tree, index files claiming every pack for a made-up blob; the trusted prune
#     refuses while the first is there and removes nothing, then keeps all a real snapshot
#     needs (check --read-data, exact restore).
# Prints ok/FAIL lines; exits 1 when anything failed.
set -uo pipefail

SRC=${PF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PF=${PERMAFROST:-$SRC/permafrost}
LIB=${PF_TESTLIB:-$SRC/tests/lib}
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$SRC/$BUILD" ;; esac
PFSTORE=$BUILD/tests/pfstore
. "$SRC/tests/harness/sshd.sh"
. "$SRC/tests/harness/mastodon.sh"

[ -x "$PFSTORE" ] || (cd "$SRC" && make -s BUILD="$BUILD" "$PFSTORE") || {
    echo "FAIL writeonly: cannot build $PFSTORE"
    exit 1
}

T=$(mktemp -d "${TMPDIR:-/tmp}/pf-wo.XXXXXX")
chmod 755 "$T"
harness_on_exit "rm -rf '$T'"
L=$T/log
mkdir -p "$L"
. "$SRC/tests/lib/counting.sh"
. "$SRC/tests/lib/serve.sh"
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$OUT"; }

unset SSH_AUTH_SOCK PERMAFROST_REPO PERMAFROST_PASSWORD_FILE PERMAFROST_PASSWORD
: >"$T/empty.conf"
export PERMAFROST_CONFIG=$T/empty.conf PERMAFROST_RETRY_BASE_MS=20

serve_sshd_start writeonly
ROOT=$T/srv
REPO=$ROOT/mastodon
mkdir -p "$ROOT"
serve_key_line "$SSHD_KEY.pub" --append-only --restrict-to-path "$ROOT" >"$SSHD_DIR/authorized_keys"
APPEND_SSH="$SSH_BASE -i $SSHD_KEY"
URL=ssh://$(id -un)@127.0.0.1:$SSHD_PORT$REPO
echo "the full key's passphrase" >"$T/full.pass"
echo "the write-only key's passphrase" >"$T/wo.pass"
export PERMAFROST_KEY_CACHE=$T/keycache # wal-push and wal-fetch cache keys: not in $HOME
# pff: the trusted side (full key, the repository's local path on the backup host).
# pfw: the backed-up server (write-only key, through the append-only server), its own cache.
pff() { PERMAFROST_PASSWORD_FILE=$T/full.pass PERMAFROST_CACHE_DIR=$T/cache-trusted timeout -k 5 120 "$PF" --repo "$REPO" "$@"; }
pfw() { PERMAFROST_PASSWORD_FILE=$T/wo.pass PERMAFROST_CACHE_DIR=$T/cache-server PERMAFROST_SSH=$APPEND_SSH timeout -k 5 120 "$PF" --repo "$URL" "$@"; }
# pfwl: the write-only key on the local path (the refusals happen after the key opens,
# whatever the store; ssh would only make them slower).
pfwl() { PERMAFROST_PASSWORD_FILE=$T/wo.pass PERMAFROST_CACHE_DIR=$T/cache-server timeout -k 5 120 "$PF" --repo "$REPO" "$@"; }
attacker() { PERMAFROST_PASSWORD="the write-only key's passphrase" PERMAFROST_SSH=$APPEND_SSH "$PFSTORE" "$URL" "$@"; }

S=$T/src
mkdir -p "$S/sub"
echo "first" >"$S/a.txt"
head -c 3145728 /dev/urandom >"$S/sub/big.bin"
head -c 200000 /dev/urandom >"$S/sub/mid.bin"
ln -s a.txt "$S/link"

# ---- the trusted side makes the repository, a first backup, and the write-only key ----
run init pff init
rc_is 0 "init (full key)"
run full1 pff backup "$S"
rc_is 0 "a backup with the full key"
run samepass pff key add --write-only --new-password-file "$T/full.pass"
refused_line "a write-only key with the full key's passphrase" 2 "passphrase of its own"
run keyadd pff key add --write-only --new-password-file "$T/wo.pass"
rc_is 0 "key add --write-only"
grep -qF "format 3" "$OUT" && ok "it moved the repository to format 3: $(cat "$OUT" | cut -c1-120)" || fail "no format 3 in: $(cat "$OUT")"
[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$REPO/config")" = 3 ] &&
    ok "config says format 3" || fail "config: $(cat "$REPO/config")"
WOKEY=$(cd "$REPO/keys" && grep -l '"write-only"' * | head -1)
[ -n "$WOKEY" ] && ok "the key file ${WOKEY:0:8} says write-only" || fail "no write-only key file"
run keylist pff key list
grep -q "${WOKEY:0:8}.*write-only" "$OUT" && ok "key list marks it" || fail "key list: $(cat "$OUT")"

# ---- the backed-up server: write-only key, append-only server ----
run wo1 pfw --json backup "$S"
rc_is 0 "backup with the write-only key through the append-only server"
STORED=$(json 'd["stats"]["bytes_stored"]')
[ "${STORED:-99999999}" -lt 65536 ] && ok "it deduplicated against the full key's snapshot ($STORED bytes stored of 3.3 MB)" ||
    fail "first write-only backup stored $STORED bytes"
run wo2 pfw --json backup "$S"
rc_is 0 "a second write-only backup"
NEW=$(json 'd["stats"]["bytes_new"]') UNCH=$(json 'd["stats"]["files_unchanged"]') FILES=$(json 'd["stats"]["files"]')
[ "$NEW" = 0 ] && [ "$UNCH" = "$FILES" ] && ok "it added nothing: $UNCH of $FILES files unchanged (from its own cache)" ||
    fail "second backup: bytes_new $NEW, unchanged $UNCH of $FILES"
echo "second" >>"$S/a.txt"
run wo3 pfw --json backup "$S"
rc_is 0 "a write-only backup of a changed file"
WOSNAP=$(json 'd["id"]')
NCACHED=$(ls "$T"/cache-server/*/ | grep -c '^wsnap-')
[ "$NCACHED" = 1 ] && ok "the server's cache keeps only the newest of its 3 snapshots of $S" ||
    fail "the server's cache holds $NCACHED snapshots"

WAL=$T/wal/000000010000000000000003
mkdir -p "$T/wal" "$T/walout"
head -c 1048576 /dev/urandom >"$WAL"
run walpush pfw wal-push "$WAL"
rc_is 0 "wal-push with the write-only key"
[ "$(stat -c %a "$T"/keycache/*.wkey 2>&1)" = 600 ] && ok "it cached the write-only key (mode 0600)" ||
    fail "no write-only key cached: $(ls -l "$T/keycache" 2>&1)"
ls "$T"/keycache/*.key >/dev/null 2>&1 && fail "a master key in the server's key cache"
# The second push must open with the cached key, not the passphrase (scrypt per segment
# would not keep up with a busy server): a wrong passphrase file would fail it otherwise.
cp "$T/wo.pass" "$T/wo.pass.good"
echo "not-the-write-only-passphrase" >"$T/wo.pass"
run walpush2 pfw wal-push "$WAL"
cp "$T/wo.pass.good" "$T/wo.pass"
rc_is 0 "wal-push again, opened with the cached write-only key"
grep -qF "already archived" "$ERR" && ok "it said so (it can read the WAL object)" || { fail "no 'already archived'"; show; }

# backup --live of a Mastodon-shaped server (PostgreSQL, Redis, secrets, media).
if mastodon_up "$T/masto" >"$L/mastodon-up" 2>&1; then
    run live pfw --json backup --live "$T/masto/live"
    rc_is 0 "backup --live with the write-only key"
    for c in secrets postgres redis media; do
        st=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['components']['$c']['status'])" "$OUT" 2>/dev/null)
        [ "$st" = ok ] && ok "backup --live: $c ok" || fail "backup --live: component $c: $st"
    done
    LIVESNAP=$(json 'd["id"]')
else
    fail "cannot start the Mastodon-shaped server: $(tail -3 "$L/mastodon-up")"
fi

# ---- what the write-only key cannot do ----
fingerprint "$REPO" >"$T/fp.before"
for c in "restore latest --target $T/nope" "ls latest" "dump latest src/a.txt" "check --read-data" \
    "key export --paper" "snapshots" "prune" "forget --keep-last 1"; do
    run refused pfwl $c
    refused_line "${c%% $T*} with the write-only key" 12 "needs a full key" "key ${WOKEY:0:8} is write-only"
done
# wal-fetch exits 126 on every failure: PostgreSQL then stops recovery instead of ending it.
run refused pfwl wal-fetch 000000010000000000000003 "$T/nope.wal"
refused_line "wal-fetch with the write-only key" 126 "needs a full key" "key ${WOKEY:0:8} is write-only"
run keyadd2 pfwl key add --new-password-file "$T/full.pass"
refused_line "key add with the write-only key" 12 "is write-only"
[ ! -e "$T/nope" ] && ok "nothing was restored" || fail "$T/nope exists"
fingerprint "$REPO" >"$T/fp.after"
cmp -s "$T/fp.before" "$T/fp.after" && ok "the repository is unchanged" || fail "the repository changed"

# ---- the full key reads everything ----
run check1 pff check --read-data
rc_is 0 "check --read-data with the full key (packs and snapshots of both kinds)"
run restore1 pff restore "$WOSNAP" --target "$T/r1"
rc_is 0 "restore of the write-only key's snapshot with the full key"
python3 "$LIB/compare_trees.py" "$S" "$T/r1/src" >"$L/cmp1" 2>&1 && ok "restored exactly" ||
    fail "restore differs: $(head -5 "$L/cmp1")"
run walfetch pff wal-fetch 000000010000000000000003 "$T/walout/seg"
rc_is 0 "wal-fetch with the full key"
cmp -s "$WAL" "$T/walout/seg" && ok "the same WAL bytes" || fail "wal-fetch gave other bytes"
if [ -n "${LIVESNAP:-}" ]; then
    run lslive pff ls "$LIVESNAP"
    grep -q "postgres/" "$OUT" && ok "the write-only key's --live snapshot lists with the full key" || fail "ls of the live snapshot: $(head -3 "$OUT")"
fi

# ---- the attacker: append-only SSH key and write-only key ----
run fnothing attacker forge-snapshot
rc_is 0 "the attacker adds a snapshot whose tree does not exist"
NOTHING=$(cat "$OUT")
TREE=$(cd "$T/cache-server" && ls */ | sed -n 's/^wtree-//p' | head -1)
run fclaim attacker forge-snapshot "$TREE"
rc_is 0 "the attacker adds a snapshot naming one of its real trees"
run findex attacker forge-index 5
rc_is 0 "the attacker adds 5 index files claiming every pack holds a made-up blob"
fingerprint "$REPO" >"$T/fp.forged"
run tprune1 pff prune
if [ "$RC" != 0 ] && grep -qF "nothing was removed" "$ERR"; then ok "trusted prune refuses: $(cut -c1-140 "$ERR")"; else
    fail "trusted prune with a snapshot of nothing: exit $RC"
    show
fi
fingerprint "$REPO" >"$T/fp.tprune"
cmp -s "$T/fp.forged" "$T/fp.tprune" && ok "it removed nothing" || fail "trusted prune removed something"
run rmforged "$PFSTORE" "$REPO" rm "snapshots/$NOTHING"
rc_is 0 "the trusted side removes that snapshot"
NPACKS=$(find "$REPO/data" -type f | wc -l)
run tprune2 pff prune --max-unused 0
rc_is 0 "trusted prune (every pack with anything unused rewritten)"
run check2 pff check --read-data
rc_is 0 "check --read-data after the trusted prune"
rm -rf "$T/r2"
run restore2 pff restore "$WOSNAP" --target "$T/r2"
python3 "$LIB/compare_trees.py" "$S" "$T/r2/src" >"$L/cmp2" 2>&1 && ok "the real snapshot restores exactly after prune" ||
    fail "restore after the trusted prune differs: $(head -5 "$L/cmp2") $(cat "$ERR")"
run wo4 pfw --json backup "$S"
rc_is 0 "the write-only key backs up after the trusted prune (its index files rewritten)"
STORED=$(json 'd["stats"]["bytes_stored"]')
[ "${STORED:-99999999}" -lt 65536 ] && ok "and still deduplicates ($STORED bytes stored; $NPACKS packs before the prune)" ||
    fail "after prune the write-only backup stored $STORED bytes"

if [ "$FAILED" -gt 0 ]; then
    echo "writeonly: $FAILED check(s) failed"
    exit 1
fi
echo "writeonly: all checks passed"

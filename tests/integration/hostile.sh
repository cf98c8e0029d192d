#!/usr/bin/env bash
# Someone who can read and write the store but has no passphrase (docs/SECURITY.md §1),
# through the CLI, against local repositories and one on sshd (sftp://, which keeps a local
# metadata cache; the store's files are plain files under $SSHD_ROOT for the attacker to
# edit):
#   cacheid   config's id set to "..//victim/./././..." (64 characters) and a payload
#             uploaded as snapshots/<its sha256>: refused before anything is written,
#             nothing appears in victim/ or anywhere outside the cache
#   cachepoison  a planted snapshots/<sha256(junk)> is not cached; a planted cache file
#             is not trusted
#   config    a format-2 config with changed chunker / pack size / id / mac, without mac,
#             or replaced by a format-1 one: refused with a clear message; the original
#             still opens
#   keys      key files asking for 1 GiB (and 16 GiB) of scrypt: skipped with a warning
#             naming them, in bounded memory and time (/usr/bin/time -v); too many key
#             files: refused
#   v1        tests/fixtures/repo-v1 (written by format-1 permafrost): snapshots, ls,
#             restore exactly, check --read-data, backup keeps format 1; upgrade adds the
#             MAC and re-seals that passphrase, another passphrase still opens and
#             key passwd re-seals it; putting the old config back is then refused
# HOSTILE_PARTS="v1 keys" runs some parts only.
set -uo pipefail

SRC=${PF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PF=${PERMAFROST:-$SRC/permafrost}
PARTS=${HOSTILE_PARTS:-cacheid cachepoison config keys v1 bigenv}
. "$SRC/tests/harness/sshd.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/pf-hostile.XXXXXX")
chmod 755 "$T"
harness_on_exit "rm -rf '$T'"
L=$T/log
mkdir -p "$L" "$T/home/.ssh"
chmod 700 "$T/home" "$T/home/.ssh"
. "$SRC/tests/lib/counting.sh"
part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac }
say() { echo "== $*"; }

unset SSH_AUTH_SOCK PERMAFROST_REPO PERMAFROST_PASSWORD_FILE PERMAFROST_HOST XDG_CACHE_HOME
: >"$T/empty.conf"
export PERMAFROST_CONFIG=$T/empty.conf
export PERMAFROST_CACHE_DIR=$T/cache
export PERMAFROST_PASSWORD=hostile-test-passphrase
export PERMAFROST_RETRY_BASE_MS=50
H=$T/home

pf() { HOME=$H timeout -k 5 120 "$PF" ${SSHD_KEY:+--ssh-key "$SSHD_KEY"} "$@"; }
# set_json FILE PYTHON: edits a JSON file in place (d is the document); writes it the way
# cJSON's formatted printer does not matter: readers parse JSON.
set_json() {
    python3 - "$1" "$2" <<'PY'
import json, sys
p, expr = sys.argv[1], sys.argv[2]
d = json.load(open(p))
exec(expr)
open(p, "w").write(json.dumps(d))
PY
}
sha() { sha256sum "$1" | cut -c1-64; }

mkdir -p "$T/src/data/sub"
printf 'hello\n' >"$T/src/data/a.txt"
head -c 5000 /dev/urandom >"$T/src/data/sub/b.bin"

# ---- cacheid / cachepoison: sftp, whose metadata is cached locally ---------------------------
if part cacheid || part cachepoison; then
    say "starting sshd"
    for i in 1 2 3; do
        sshd_start "$T/sshd" >"$L/sshd-start" 2>&1 && break
        sshd_stop
        [ $i = 3 ] && die "cannot start sshd: $(tail -5 "$L/sshd-start")"
    done
    cp "$SSHD_KNOWN_HOSTS" "$H/.ssh/known_hosts"
    U=$SSHD_URL/repo
    R=$SSHD_ROOT/repo # the store as the attacker sees it
    run init pf --repo "$U" init
    rc_is 0 "sftp: init"
    run backup bash -c "cd '$T/src' && HOME='$H' '$PF' --ssh-key '$SSHD_KEY' --repo '$U' backup data"
    rc_is 0 "sftp: backup"
    RID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$R/config")
    [ -d "$T/cache/$RID" ] && ok "sftp: cache folder is <cache>/<id>" || fail "sftp: no cache folder $T/cache/$RID"
fi

if part cacheid; then
    say "cacheid: config's id as a path out of the cache"
    cp "$R/config" "$T/config.good"
    # 64 characters: <cache>/..//victim/./././... is $T/victim, an existing folder (as
    # /etc/cron.d would be)
    mkdir "$T/victim"
    EVIL="..//victim$(printf '/.%.0s' $(seq 27))"
    [ ${#EVIL} = 64 ] || die "test bug: id is ${#EVIL} characters"
    # As a format-1 config (no MAC to break): only the id check stands in the way.
    set_json "$R/config" "d['version'] = 1; d.pop('mac', None); d['id'] = '$EVIL'"
    printf '* * * * * root touch %s/pwned\n' "$T" >"$T/payload"
    PSHA=$(sha "$T/payload")
    cp "$T/payload" "$R/snapshots/$PSHA"
    # every file and folder outside the cache, the logs and the server's own files
    outside() { find "$T" -not -path "$L*" -not -path "$T/sshd*" -not -path "$T/cache*" | LC_ALL=C sort; }
    outside >"$L/before"
    run evil-id pf --repo "$U" snapshots
    rc_is 4 "cacheid: a config whose id is not 64 hex digits is refused (exit 4)"
    has "cacheid: the message names the repository id" "invalid repository id"
    [ -z "$(ls -A "$T/victim")" ] && ok "cacheid: nothing written in the folder the id names" ||
        fail "cacheid: written in $T/victim: $(ls -la "$T/victim" 2>&1 | head -3)"
    outside >"$L/after"
    written=$(comm -13 "$L/before" "$L/after")
    [ -z "$written" ] && ok "cacheid: no file written outside the cache" ||
        fail "cacheid: written outside the cache: $written"
    [ -z "$(find "$T/cache" -name "*$PSHA*")" ] && ok "cacheid: the payload is nowhere in the cache" ||
        fail "cacheid: the payload was cached"
    # Upper-case hex is a valid-looking id of the wrong shape: refused too.
    set_json "$R/config" "d['id'] = '$RID'.upper()"
    run upper-id pf --repo "$U" snapshots
    rc_is 4 "cacheid: an upper-case id is refused"
    cp "$T/config.good" "$R/config"
    rm -f "$R/snapshots/$PSHA"
    run good-id pf --repo "$U" snapshots
    rc_is 0 "cacheid: the original config opens"
fi

if part cachepoison; then
    say "cachepoison: planted objects and cache files"
    printf 'PFO1 not an object, but named after its own hash\n' >"$T/junk"
    JSHA=$(sha "$T/junk")
    cp "$T/junk" "$R/snapshots/$JSHA"
    run poison pf --repo "$U" snapshots
    rc_is 0 "cachepoison: snapshots lists (skipping the planted object)"
    has "cachepoison: the planted object is reported" "skipping damaged snapshot ${JSHA:0:8}"
    [ -z "$(find "$T/cache" -name "*$JSHA*")" ] && ok "cachepoison: the planted object was not cached" ||
        fail "cachepoison: the planted object is in the cache: $(find "$T/cache" -name "*$JSHA*")"
    rm -f "$R/snapshots/$JSHA"
    # A planted cache file: a real snapshot's cache entry replaced by junk under the same
    # name. It must be refetched, not trusted, and replaced by the real object.
    SID=$(ls "$R/snapshots" | head -1)
    C=$T/cache/$RID/snapshots-$SID
    [ -f "$C" ] || fail "cachepoison: no cache entry $C"
    cp "$T/junk" "$C"
    run poisoned-cache pf --repo "$U" snapshots
    rc_is 0 "cachepoison: a planted cache file does not break snapshots"
    grep -q "^${SID:0:8}" "$OUT" && ok "cachepoison: the snapshot is read from the store instead" ||
        { fail "cachepoison: snapshot ${SID:0:8} missing"; show; }
    cmp -s "$C" "$R/snapshots/$SID" && ok "cachepoison: the cache entry is the store's object again" ||
        fail "cachepoison: cache entry not replaced"
    # The same id as the real repository's cache folder, but a folder others can write:
    # not used.
    chmod 777 "$T/cache/$RID"
    run open-cache pf --repo "$U" snapshots
    rc_is 0 "cachepoison: a world-writable cache folder does not stop the command"
    has "cachepoison: ... and is not used" "not using the cache"
    chmod 700 "$T/cache/$RID"
fi

# ---- config: local repositories --------------------------------------------------------------
if part config; then
    say "config: the MAC of format 2"
    C=$T/crepo
    run c-init pf --repo "$C" init
    rc_is 0 "config: init"
    run c-backup bash -c "cd '$T/src' && '$PF' --repo '$C' backup data"
    rc_is 0 "config: backup"
    grep -q '"version":[[:space:]]*2' "$C/config" && grep -q '"mac"' "$C/config" &&
        ok "config: init writes format 2 with a mac" || fail "config: $(cat "$C/config")"
    cp "$C/config" "$T/cconfig.good"
    tamper() { # DESCRIPTION PYTHON WANT_RC WANT_TEXT
        cp "$T/cconfig.good" "$C/config"
        set_json "$C/config" "$2"
        run "c-${1//[^a-z0-9]/-}" pf --repo "$C" snapshots
        rc_is "$3" "config: $1 is refused (exit $3)"
        has "config: $1: clear message" "$4"
        [ ! -s "$OUT" ] && ok "config: $1: nothing listed" || fail "config: $1: listed $(head -3 "$OUT")"
    }
    tamper "changed chunker min" "d['chunker']['min'] = 65536" 4 "config fails authentication"
    tamper "changed chunker avg/max" "d['chunker']['avg'] = 256; d['chunker']['max'] = 1024; d['chunker']['min'] = 64" 4 "config fails authentication"
    tamper "changed pack size" "d['pack_size'] = 1048576" 4 "config fails authentication"
    tamper "a wrong mac" "d['mac'] = '0' * 64" 4 "config fails authentication"
    tamper "no mac" "d.pop('mac', None)" 4 "no valid \"mac\""
    tamper "an extra field" "d['chunker2'] = {}" 4 "a field it must not have"
    tamper "a changed id" "d['id'] = ('0' if d['id'][0] != '0' else '1') + d['id'][1:]" 12 "wrong passphrase"
    tamper "downgraded to format 1" "d['version'] = 1; d.pop('mac', None); d['chunker']['min'] = 65536" 4 "config says format 1"
    tamper "format 4" "d['version'] = 4" 10 "not supported"
    cp "$T/cconfig.good" "$C/config"
    run c-good pf --repo "$C" check
    rc_is 0 "config: the original config opens and checks"
fi

# ---- keys ------------------------------------------------------------------------------------
if part keys; then
    say "keys: hostile key files"
    K=$T/krepo
    run k-init pf --repo "$K" init
    rc_is 0 "keys: init"
    addkey() { # N R P: a key file with those scrypt parameters; prints its name
        python3 - "$K/keys" "$1" "$2" "$3" <<'PY'
import hashlib, json, os, sys
d, n, r, p = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
text = json.dumps({"version": 1, "kdf": "scrypt", "N": n, "r": r, "p": p,
                   "salt": os.urandom(32).hex(), "sealed": os.urandom(48).hex()})
name = hashlib.sha256(text.encode()).hexdigest()
open(os.path.join(d, name), "w").write(text)
print(name)
PY
    }
    K1=$(addkey $((1 << 20)) 8 1)  # 1 GiB
    K2=$(addkey $((1 << 22)) 32 16) # 16 GiB, the old upper bound
    # measure MAXRSS_KB SECONDS of the last run, from /usr/bin/time -v
    measure() {
        MAXRSS=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$L/time")
        ELAPSED=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$L/time")
        SECS=$(echo "$ELAPSED" | awk -F: '{s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print int(s)}')
    }
    run k-wrong /usr/bin/time -v -o "$L/time" env PERMAFROST_PASSWORD=not-the-passphrase "$PF" --repo "$K" snapshots
    measure
    rc_is 12 "keys: wrong passphrase with costly key files: exit 12"
    has "keys: the 1 GiB key file is named" "key file keys/$K1"
    has "keys: the 16 GiB key file is named" "key file keys/$K2"
    has "keys: the message says why" "beyond what permafrost accepts"
    [ "${SECS:-99}" -lt 15 ] && ok "keys: refused quickly ($ELAPSED)" || fail "keys: took $ELAPSED"
    [ -n "$MAXRSS" ] && [ "$MAXRSS" -lt 204800 ] && ok "keys: memory stays bounded (max RSS ${MAXRSS} KiB < 200 MiB; $ELAPSED)" ||
        fail "keys: max RSS ${MAXRSS:-?} KiB ($ELAPSED)"
    run k-right /usr/bin/time -v -o "$L/time" "$PF" --repo "$K" snapshots
    measure
    rc_is 0 "keys: the right passphrase still opens, next to costly key files"
    [ -n "$MAXRSS" ] && [ "$MAXRSS" -lt 204800 ] && ok "keys: ... in bounded memory (max RSS ${MAXRSS} KiB)" ||
        fail "keys: max RSS ${MAXRSS:-?} KiB"
    # A key file too large to be one.
    head -c 100000 /dev/zero | tr '\0' ' ' >"$K/keys/$(printf '%064d' 7)"
    run k-big pf --repo "$K" snapshots
    rc_is 0 "keys: a 100 KB key file does not stop the open"
    has "keys: ... and is named" "key file keys/$(printf '%064d' 7) is 100000 bytes"
    # Too many key files: refused, saying so.
    for i in $(seq 70); do printf '{}' >"$K/keys/$(printf '%064x' $((1000 + i)))"; done
    run k-many pf --repo "$K" snapshots
    rc_is 4 "keys: more than 64 key files are refused"
    has "keys: ... with a message saying so" "more than 64 key files"
fi

# ---- v1: a repository written by format-1 permafrost -----------------------------------------
if part v1; then
    say "v1: tests/fixtures/repo-v1"
    V=$T/v1
    cp -r "$SRC/tests/fixtures/repo-v1" "$V"
    mkdir -p "$V/locks"
    export PERMAFROST_PASSWORD=fixture-v1-passphrase
    manifest() {
        find data \( -type d -printf '%y %m %TY-%Tm-%Td %TH:%TM:%.2TS - %p\n' \) -o \
            \( ! -type d -printf '%y %m %TY-%Tm-%Td %TH:%TM:%.2TS %s %p -> %l\n' \) | LC_ALL=C sort -k5
        find data -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    }
    run v1-snapshots pf --repo "$V" --json snapshots
    rc_is 0 "v1: snapshots"
    n=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d), d[0]["tags"][0])' "$OUT" 2>&1)
    [ "$n" = "1 fixture" ] && ok "v1: one snapshot, tagged fixture" || fail "v1: snapshots: $n"
    has "v1: says the config is not authenticated, and how to fix it" "permafrost upgrade"
    run v1-ls pf --repo "$V" ls latest
    rc_is 0 "v1: ls"
    for p in data/hello.txt data/sub/notes.md data/sub/xs.bin data/link data/data; do
        grep -q "$p" "$OUT" || fail "v1: ls lacks $p"
    done
    has "v1: ls lists the files" "data/sub/xs.bin"
    run v1-restore pf --repo "$V" restore latest --target "$T/v1-out"
    rc_is 0 "v1: restore"
    (cd "$T/v1-out" && manifest) >"$T/v1-out.manifest"
    if diff -u "$SRC/tests/fixtures/repo-v1.manifest" "$T/v1-out.manifest" >"$T/v1.diff"; then
        ok "v1: restored exactly (types, modes, times, sizes, link target, SHA-256)"
    else
        fail "v1: restore differs"
        sed 's/^/     | /' "$T/v1.diff" | head -20
    fi
    run v1-check pf --repo "$V" check --read-data
    rc_is 0 "v1: check --read-data"
    run v1-backup bash -c "cd '$T/src' && '$PF' --repo '$V' backup data"
    rc_is 0 "v1: backup into a format-1 repository"
    cmp -s "$V/config" "$SRC/tests/fixtures/repo-v1/config" && ok "v1: backup leaves config as it was (format 1)" ||
        fail "v1: backup rewrote config"
    say "v1: upgrade"
    # a second passphrase, format 1 like the repository
    printf 'second-passphrase\n' >"$T/second"
    printf 'third-passphrase\n' >"$T/third"
    run v1-keyadd pf --repo "$V" key add --new-password-file "$T/second"
    rc_is 0 "v1: key add (a format-1 key)"
    run v1-upgrade pf --repo "$V" upgrade
    rc_is 0 "v1: upgrade"
    has "v1: upgrade prints the values it sealed" "chunker 524288/1048576/8388608, pack size 16777216"
    grep -q '"version":[[:space:]]*2' "$V/config" && grep -q '"mac"' "$V/config" &&
        ok "v1: config is now format 2 with a mac" || fail "v1: config after upgrade: $(cat "$V/config")"
    [ "$(ls "$V/keys" | wc -l)" = 2 ] && [ "$(grep -l '"version":[[:space:]]*2' "$V/keys/"* | wc -l)" = 1 ] &&
        ok "v1: the passphrase's key file is now version 2 (the old one removed), the other still 1" ||
        fail "v1: keys after upgrade: $(ls "$V/keys")"
    run v1-second env PERMAFROST_PASSWORD=second-passphrase "$PF" --repo "$V" snapshots
    rc_is 0 "v1: the other passphrase (a format-1 key) still opens the upgraded repository"
    run v1-passwd env PERMAFROST_PASSWORD=second-passphrase "$PF" --repo "$V" key passwd --new-password-file "$T/third"
    rc_is 0 "v1: key passwd with it"
    [ "$(grep -L '"version":[[:space:]]*2' "$V/keys/"* | wc -l)" = 0 ] &&
        ok "v1: ... re-seals it as version 2: every key file is version 2 now" || fail "v1: a key of version 1 is left"
    run v1-third env PERMAFROST_PASSWORD=third-passphrase "$PF" --repo "$V" snapshots
    rc_is 0 "v1: the new passphrase opens"
    run v1-upgrade2 pf --repo "$V" upgrade
    rc_is 0 "v1: upgrade again"
    has "v1: ... has nothing to do" "already of format 2"
    rm -rf "$T/v1-out"
    run v1-restore2 pf --repo "$V" restore "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["id"])' "$L/v1-snapshots.out")" --target "$T/v1-out"
    rc_is 0 "v1: restore after upgrade"
    (cd "$T/v1-out" && manifest) >"$T/v1-out.manifest"
    diff -q "$SRC/tests/fixtures/repo-v1.manifest" "$T/v1-out.manifest" >/dev/null &&
        ok "v1: ... exactly" || fail "v1: restore after upgrade differs"
    run v1-check2 pf --repo "$V" check --read-data
    rc_is 0 "v1: check --read-data after upgrade"
    cp "$SRC/tests/fixtures/repo-v1/config" "$V/config"
    run v1-downgrade pf --repo "$V" snapshots
    rc_is 4 "v1: the format-1 config put back after upgrade is refused"
    has "v1: ... saying it was replaced" "config says format 1"
fi

# A writer with the key can name a huge secrets/.env.production cheaply (one blob, many
# times): restore --live refuses it by its recorded size, before reading it into memory.
if part bigenv; then
    B=$T/bigenv
    mkdir -p "$B/secrets" "$B/live"
    head -c $((3 * 1024 * 1024)) /dev/zero | tr '\0' '#' >"$B/secrets/.env.production"
    run bigenv-init pf --repo "$B/repo" init
    rc_is 0 "bigenv: init"
    run bigenv-backup pf --repo "$B/repo" --json backup "$B/secrets"
    rc_is 0 "bigenv: a plain backup laid out like a server's secrets/"
    id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$OUT")
    run bigenv-restore pf --repo "$B/repo" restore "$id" --live "$B/live" --only secrets
    rc_is 4 "bigenv: restore --live of a 3 MiB .env.production is refused as damaged"
    has "bigenv: ... naming the file and its size" "is 3145728 bytes"
    [ ! -e "$B/live/.env.production" ] && ok "bigenv: nothing written" ||
        fail "bigenv: .env.production was written"
fi

echo "$FAILED failed"
[ "$FAILED" = 0 ]

#!/usr/bin/env bash
# Media kept on S3 (issue 16 part 4), against s3rver holding a Mastodon-shaped media bucket:
# - the bucket named by S3_ENDPOINT / S3_BUCKET / S3_REGION of .env.production, read with the
#   AWS_* keys of .env.production and never with permafrost's own (which may be the
#   repository's), through tests/tools/pfcomp (built by `make unit`);
# - backup --live --media-from-s3: the bucket mirrored into media/, byte for byte; changed
#   (added, replaced, deleted objects) and mirrored again: unchanged objects are not read
#   again (the snapshot counts them, and bytes changed behind S3's back in an unchanged
#   object do not reach the snapshot), --exclude-cache leaves cache/ out;
# - restore --only media into public/system, and --media-to-s3 into another bucket, with
#   the Content-Type recorded at backup; both compared byte for byte;
# - wrong keys in .env.production: one line naming the bucket and what to do, at backup and
#   (before anything is written) at restore --media-to-s3.
set -uo pipefail

SRC=${PF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
PFCOMP=$BUILD/tests/pfcomp
. "$SRC/tests/harness/s3rver.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/pf-s3media.XXXXXX")
harness_on_exit "rm -rf '$T'"
FAILED=0
ok() { echo "ok   $*"; }
fail() {
    echo "FAIL $*"
    FAILED=$((FAILED + 1))
}
[ -x "$PFCOMP" ] || { echo "FAIL $PFCOMP missing (make unit)"; exit 1; }

s3rver_start "$T" "" files >/dev/null || { echo "FAIL cannot start s3rver"; exit 1; }
# s3rver checks the access key id: S3RVER is the one it accepts.
put() { # KEY BYTES
    head -c "$2" /dev/urandom >"$T/obj"
    curl -sf -X PUT --data-binary @"$T/obj" -H 'Content-Type: application/octet-stream' \
        "$S3RVER_ENDPOINT/files/$1" >/dev/null || fail "PUT $1"
}
put media_attachments/files/000/000/001/original/a1b2c3d4.jpg 30000
put media_attachments/files/000/000/001/small/a1b2c3d4.jpg 4000
put accounts/avatars/000/000/001/original/avatar.png 9000
put cache/media_attachments/files/109/000/000/original/remote1.jpg 5000
printf '%s\n' "accounts/avatars/000/000/001/original/avatar.png 9000" \
    "cache/media_attachments/files/109/000/000/original/remote1.jpg 5000" \
    "media_attachments/files/000/000/001/original/a1b2c3d4.jpg 30000" \
    "media_attachments/files/000/000/001/small/a1b2c3d4.jpg 4000" >"$T/want"

mkdir -p "$T/live"
cat >"$T/live/.env.production" <<EOE
LOCAL_DOMAIN=s3.example
S3_ENABLED=true
S3_BUCKET=files
S3_ENDPOINT=$S3RVER_ENDPOINT
S3_REGION=us-east-1
AWS_ACCESS_KEY_ID=S3RVER
AWS_SECRET_ACCESS_KEY=S3RVER
EOE
# Our own keys are wrong for this server: only .env.production's can work.
export AWS_ACCESS_KEY_ID=not-the-media-key AWS_SECRET_ACCESS_KEY=not-the-media-secret
"$PFCOMP" s3media-list "$T/live" >"$T/got" 2>"$T/err"
rc=$?
[ $rc = 0 ] && ok "the media bucket lists with .env.production's keys" || { fail "s3media-list: exit $rc"; sed 's/^/     | /' "$T/err"; }
if diff <(LC_ALL=C sort "$T/got") "$T/want" >"$T/diff"; then ok "every object, with its size"; else
    fail "listing differs"
    sed 's/^/     | /' "$T/diff"
fi

# The reverse: ours would work, .env.production's do not: refused, ours not borrowed.
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
sed -i 's/^AWS_ACCESS_KEY_ID=.*/AWS_ACCESS_KEY_ID=wrong-media-key/' "$T/live/.env.production"
"$PFCOMP" s3media-list "$T/live" >"$T/got" 2>"$T/err"
rc=$?
[ $rc != 0 ] && ok "a wrong key in .env.production is refused (exit $rc)" || fail "listed with the wrong key: $(head -3 "$T/got")"
grep -q 'wrong-media-key\|S3RVER' "$T/err" && fail "a key in the message: $(cat "$T/err")" || ok "no key in the message"
sed -i '/^AWS_ACCESS_KEY_ID=/d' "$T/live/.env.production"
"$PFCOMP" s3media-list "$T/live" >"$T/got" 2>"$T/err"
rc=$?
[ $rc != 0 ] && grep -q 'AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not set' "$T/err" &&
    ok "no key in .env.production: refused, naming it" || fail "without keys: exit $rc, $(cat "$T/err")"

# S3_OVERRIDE_PATH_STYLE=true: the bucket in the host name, as Mastodon then addresses it.
# s3rver takes a host name that is not an address as the bucket's name, so the objects of
# its bucket "files.localhost" are those of bucket "files" addressed that way (curl resolves
# *.localhost to the loopback); path style would list bucket "files".
mkdir -p "$T/vh"
curl -sf -X PUT "$S3RVER_ENDPOINT/files.localhost" >/dev/null || fail "create bucket files.localhost"
curl -sf -X PUT --data-binary 'vh' "$S3RVER_ENDPOINT/files.localhost/only/in/the/vhost.txt" >/dev/null ||
    fail "PUT into files.localhost"
sed "s|^S3_ENDPOINT=.*|S3_ENDPOINT=http://localhost:$S3RVER_PORT|" "$T/live/.env.production" >"$T/vh/.env.production"
echo "AWS_ACCESS_KEY_ID=S3RVER" >>"$T/vh/.env.production"
echo "S3_OVERRIDE_PATH_STYLE=true" >>"$T/vh/.env.production"
"$PFCOMP" s3media-list "$T/vh" >"$T/got" 2>"$T/err"
[ "$(cat "$T/got")" = "only/in/the/vhost.txt 2" ] && ok "S3_OVERRIDE_PATH_STYLE=true: the bucket in the host name" ||
    fail "virtual-host listing: $(cat "$T/got" "$T/err")"

# ---- the mirror: backup --live --media-from-s3 ----
sed -i 's/^AWS_ACCESS_KEY_ID=.*//' "$T/live/.env.production"
echo "AWS_ACCESS_KEY_ID=S3RVER" >>"$T/live/.env.production"
export PERMAFROST_PASSWORD=s3media-test-passphrase PERMAFROST_CACHE_DIR=$T/cache
export AWS_ACCESS_KEY_ID=not-the-media-key AWS_SECRET_ACCESS_KEY=not-the-media-secret
PF=${PERMAFROST:-$SRC/permafrost}
pf() { "$PF" --repo "$T/repo" "$@"; }
pf init >"$T/init.log" 2>&1 || { fail "init: $(cat "$T/init.log")"; }
# A video bigger than one read (8 MiB): read in ranges, several at once.
put media_attachments/files/000/000/002/original/video.mp4 $((9 * 1024 * 1024 + 123))
curl -sf -X PUT --data-binary 'not an image' -H 'Content-Type: image/png' \
    "$S3RVER_ENDPOINT/files/site_uploads/files/000/000/001/original/typed.png" >/dev/null ||
    fail "PUT typed.png"
fetch_bucket() { # BUCKET DIR: every object's bytes into DIR/<key>
    local b=$1 d=$2 k
    rm -rf "$d"
    mkdir -p "$d"
    "$PFCOMP" s3media-list "$3" | while read -r k _; do
        mkdir -p "$d/$(dirname "$k")"
        curl -sf "$S3RVER_ENDPOINT/$b/$k" -o "$d/$k" || echo "GET $b/$k failed"
    done
}
AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER fetch_bucket files "$T/want1" "$T/live"

backup() { # NAME ARGS...: a backup of secrets and media
    local name=$1
    shift
    pf backup --live "$T/live" --only secrets,media "$@" >"$T/$name.out" 2>"$T/$name.err"
    RC=$?
    ID=$(sed -n 's/^snapshot \([0-9a-f]\{8\}\) saved.*/\1/p' "$T/$name.out")
}
backup b1 --media-from-s3
ID1=$ID
[ $RC = 0 ] && ok "backup --media-from-s3 (first)" || { fail "backup 1: exit $RC"; sed 's/^/     | /' "$T/b1.err" | tail; }
grep -q "5 read\|6 objects, 0 unchanged" "$T/b1.err" && ok "the first mirror reads every object" ||
    fail "first mirror: $(grep 'media:' "$T/b1.err")"
pf restore "$ID1" --target "$T/r1" >"$T/r1.log" 2>&1 || fail "restore 1: $(tail -3 "$T/r1.log")"
if diff -r "$T/want1" "$T/r1/media" >"$T/d1"; then ok "the snapshot's media/ is the bucket, byte for byte"; else
    fail "media/ differs from the bucket"
    sed 's/^/     | /' "$T/d1" | head
fi
pf ls "$ID1" media/site_uploads/files/000/000/001/original >"$T/ls.out" 2>&1 &&
    grep -q typed.png "$T/ls.out" && ok "ls shows a mirrored object" || fail "ls: $(cat "$T/ls.out")"

# Change the bucket: one object replaced, one added, one deleted.
put media_attachments/files/000/000/001/small/a1b2c3d4.jpg 4100
put media_attachments/files/000/000/003/original/new.gif 7000
curl -sf -X DELETE "$S3RVER_ENDPOINT/files/accounts/avatars/000/000/001/original/avatar.png" >/dev/null ||
    fail "DELETE avatar"
# Behind S3's back, change the bytes of an unchanged object (its ETag stays): a mirror that
# reads it again would carry these bytes.
obj=$(find "$T/s3rver" -path '*a1b2c3d4.jpg*' -path '*original*' -name '*object*' | head -1)
[ -n "$obj" ] && printf 'TAMPERED' | dd of="$obj" bs=1 seek=0 conv=notrunc status=none ||
    fail "no s3rver object file for original/a1b2c3d4.jpg: $(find "$T/s3rver" | head -20)"
AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER fetch_bucket files "$T/want2" "$T/live"
cp "$T/want1/media_attachments/files/000/000/001/original/a1b2c3d4.jpg" \
    "$T/want2/media_attachments/files/000/000/001/original/a1b2c3d4.jpg"

backup b2 --media-from-s3
ID2=$ID
[ $RC = 0 ] && ok "backup --media-from-s3 (again)" || { fail "backup 2: exit $RC"; sed 's/^/     | /' "$T/b2.err" | tail; }
grep -q "6 objects, 4 unchanged since the parent snapshot, 2 read" "$T/b2.err" &&
    ok "the second mirror reads only the replaced and the added object" ||
    fail "second mirror: $(grep 'media:' "$T/b2.err")"
rm -rf "$T/r2"
pf restore "$ID2" --target "$T/r2" >"$T/r2.log" 2>&1 || fail "restore 2: $(tail -3 "$T/r2.log")"
if diff -r "$T/want2" "$T/r2/media" >"$T/d2"; then
    ok "the second snapshot: new and replaced objects as now, deleted gone, unchanged ones not read again"
else
    fail "second snapshot's media/ differs"
    sed 's/^/     | /' "$T/d2" | head
fi
pf --json snapshots latest >"$T/snap.json" 2>&1
python3 - "$T/snap.json" <<'PY' && ok "the snapshot's media entry: source s3, 4 unchanged, 2 read" || fail "media entry: $(cat "$T/snap.json" | head -c 600)"
import json, sys
d = json.load(open(sys.argv[1]))
s = d["snapshots"][-1] if isinstance(d, dict) and "snapshots" in d else (d[-1] if isinstance(d, list) else d)
m = s["components"]["media"]
assert m["source"] == "s3" and m["unchanged"] == 4 and m["read"] == 2 and m["status"] == "ok", m
PY

# --exclude-cache leaves cache/ out of the mirror.
backup b3 --media-from-s3 --exclude-cache
[ $RC = 0 ] && ok "backup --media-from-s3 --exclude-cache" || fail "backup 3: exit $RC: $(tail -3 "$T/b3.err")"
pf ls "$ID" media >"$T/ls3.out" 2>&1
grep -q '/cache' "$T/ls3.out" && fail "cache/ is in the snapshot: $(grep cache "$T/ls3.out" | head -3)" ||
    ok "cache/ left out"

# ---- restore: into public/system, and into another bucket ----
mkdir -p "$T/new"
pf restore "$ID2" --live "$T/new" --only media >"$T/rl.out" 2>"$T/rl.err"
RC=$?
[ $RC = 0 ] && ok "restore --only media into public/system" || { fail "restore --only media: exit $RC"; sed 's/^/     | /' "$T/rl.err" | tail; }
if diff -r "$T/want2" "$T/new/public/system" >"$T/d3"; then ok "public/system holds the bucket's bytes"; else
    fail "public/system differs"
    sed 's/^/     | /' "$T/d3" | head
fi
grep -q "media-to-s3\|S3_ENABLED=false" "$T/rl.out" && ok "what is left: Mastodon looks in the bucket, upload or switch" ||
    fail "no step about S3_ENABLED: $(cat "$T/rl.out")"

# A restore without the media of a snapshot that holds them does not say they were left out.
mkdir -p "$T/new5"
pf restore "$ID2" --live "$T/new5" --only secrets >"$T/rsec.out" 2>"$T/rsec.err" || fail "restore --only secrets: $(cat "$T/rsec.err")"
grep -q "it was not in this snapshot" "$T/rsec.out" && fail "restore --only secrets says the media were not in the snapshot" ||
    ok "restore --only secrets: no false 'media not in this snapshot'"

curl -sf -X PUT "$S3RVER_ENDPOINT/restored" >/dev/null || fail "cannot create bucket restored"
mkdir -p "$T/new2"
sed 's/^S3_BUCKET=.*/S3_BUCKET=restored/' "$T/live/.env.production" >"$T/new2/.env.production"
# Parts of 4 MiB: the 9 MiB video goes up as a multipart upload, streamed.
PERMAFROST_S3_PART_SIZE=4194304 pf -v restore "$ID2" --live "$T/new2" --only media --media-to-s3 >"$T/rs.out" 2>"$T/rs.err"
RC=$?
[ $RC = 0 ] && ok "restore --only media --media-to-s3" || { fail "restore --media-to-s3: exit $RC"; sed 's/^/     | /' "$T/rs.err" | tail; }
grep -q "bucket restored at" "$T/rs.err" && ok "it says which bucket, from which settings" || fail "which bucket: $(cat "$T/rs.err")"
AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER fetch_bucket restored "$T/got2" "$T/new2"
if diff -r "$T/want2" "$T/got2" >"$T/d4"; then ok "the target bucket holds the snapshot's bytes"; else
    fail "target bucket differs"
    sed 's/^/     | /' "$T/d4" | head
fi
ct=$(curl -sI "$S3RVER_ENDPOINT/restored/site_uploads/files/000/000/001/original/typed.png" | tr -d '\r' | sed -n 's/^[Cc]ontent-[Tt]ype: //p')
[ "$ct" = image/png ] && ok "the Content-Type recorded at backup is restored" || fail "Content-Type: '$ct'"
grep -q "video.mp4 goes up in parts of 4194304 bytes" "$T/rs.err" && ok "the video went up in parts" ||
    fail "the video was not a multipart upload: $(grep video "$T/rs.err")"

# ---- --media-from-s3 on a server whose media are on its disk ----
mkdir -p "$T/live-local/public/system/accounts"
echo local >"$T/live-local/public/system/accounts/here.txt"
printf 'LOCAL_DOMAIN=local.example\nS3_ENABLED=false\n' >"$T/live-local/.env.production"
pf backup --live "$T/live-local" --only secrets,media --media-from-s3 >"$T/lo.out" 2>"$T/lo.err"
RC=$?
LID=$(sed -n 's/^snapshot \([0-9a-f]\{8\}\) saved.*/\1/p' "$T/lo.out")
[ $RC = 0 ] && grep -q "S3_ENABLED is not true in .*, so the media are on this disk" "$T/lo.err" &&
    pf ls "$LID" media/accounts 2>/dev/null | grep -q here.txt &&
    ok "--media-from-s3 without S3_ENABLED: the local media, said so" ||
    fail "--media-from-s3 on local media: exit $RC: $(cat "$T/lo.err")"

# ---- an object below another: no path fits it ----
# "odd/x" is an object and "odd/x/y" another one below it: a tree cannot hold both. The one
# listed second is left out and named (exit 3; S3 lists odd/x first, s3rver odd/x/y), the
# other and the object after them are whole.
curl -sf -X PUT "$S3RVER_ENDPOINT/odd" >/dev/null || fail "create bucket odd"
for k in odd/x odd/x/y odd/z; do
    printf 'bytes of %s' "$k" | curl -sf -X PUT --data-binary @- "$S3RVER_ENDPOINT/odd/$k" >/dev/null || fail "PUT $k"
done
mkdir -p "$T/live-odd"
sed 's/^S3_BUCKET=.*/S3_BUCKET=odd/' "$T/live/.env.production" >"$T/live-odd/.env.production"
pf backup --live "$T/live-odd" --only secrets,media --media-from-s3 >"$T/odd.out" 2>"$T/odd.err"
RC=$?
OID=$(sed -n 's/^snapshot \([0-9a-f]\{8\}\) saved.*/\1/p' "$T/odd.out")
[ $RC = 3 ] && grep -q "object odd/x\(/y\)\? of bucket odd .* \(is below a key that is an object itself\|is an object where other keys make a folder\): left out" "$T/odd.err" &&
    ok "an object below another object: left out, named, exit 3" || fail "odd keys: exit $RC: $(cat "$T/odd.err")"
rm -rf "$T/ro"
pf restore "$OID" --target "$T/ro" >/dev/null 2>&1
kept=$(cat "$T/ro/media/odd/x" 2>/dev/null || cat "$T/ro/media/odd/x/y" 2>/dev/null)
[ "$(cat "$T/ro/media/odd/z" 2>/dev/null)" = "bytes of odd/z" ] &&
    { [ "$kept" = "bytes of odd/x" ] || [ "$kept" = "bytes of odd/x/y" ]; } &&
    ok "the objects around it are whole" || fail "odd/z: '$(cat "$T/ro/media/odd/z" 2>&1)', odd/x(/y): '$kept'"

# ---- a bucket that is not there ----
mkdir -p "$T/live-nob" "$T/new4"
sed 's/^S3_BUCKET=.*/S3_BUCKET=no-such-bucket/' "$T/live/.env.production" >"$T/live-nob/.env.production"
cp "$T/live-nob/.env.production" "$T/new4/.env.production"
pf backup --live "$T/live-nob" --only secrets,media --media-from-s3 >"$T/nb.out" 2>"$T/nb.err"
RC=$?
[ $RC = 13 ] && grep -q "bucket no-such-bucket at .* does not exist: check S3_BUCKET" "$T/nb.err" &&
    ok "backup: a missing media bucket is named, exit 13" || fail "backup, missing bucket: exit $RC: $(cat "$T/nb.err")"
pf restore "$ID2" --live "$T/new4" --only media --media-to-s3 >"$T/nr.out" 2>"$T/nr.err"
RC=$?
[ $RC = 13 ] && grep -q "bucket no-such-bucket at .* does not exist: create it" "$T/nr.err" &&
    ok "restore: a missing target bucket is named, exit 13" || fail "restore, missing bucket: exit $RC: $(cat "$T/nr.err")"

# ---- keys refused ----
mkdir -p "$T/new3"
sed 's/^S3_BUCKET=.*/S3_BUCKET=restored/; s/^AWS_ACCESS_KEY_ID=.*/AWS_ACCESS_KEY_ID=refused-key/' \
    "$T/live/.env.production" >"$T/new3/.env.production"
pf restore "$ID2" --live "$T/new3" --only media --media-to-s3 >"$T/rk.out" 2>"$T/rk.err"
RC=$?
[ $RC != 0 ] && grep -q "bucket restored at .* refused the keys of the target's .env.production (AWS_ACCESS_KEY_ID.*correct them there" "$T/rk.err" &&
    ok "restore --media-to-s3 with refused keys: one line naming the bucket, before anything is written (exit $RC)" ||
    fail "restore with refused keys: exit $RC: $(cat "$T/rk.err")"
[ -e "$T/new3/public" ] && fail "the refused restore wrote $T/new3/public" || ok "nothing written"
sed -i 's/^AWS_SECRET_ACCESS_KEY=.*/AWS_SECRET_ACCESS_KEY=S3RVER/; s/^AWS_ACCESS_KEY_ID=.*/AWS_ACCESS_KEY_ID=refused-key/' "$T/live/.env.production"
backup b4 --media-from-s3
[ $RC != 0 ] && ok "refused keys fail the backup (exit $RC)" || fail "backup with refused keys: exit 0"
grep -q "media: bucket files at .* refused the keys of .env.production (AWS_ACCESS_KEY_ID.*correct them there" "$T/b4.err" &&
    ok "one line names the bucket and the keys to correct" || fail "refusal message: $(cat "$T/b4.err")"
grep -q 'refused-key' "$T/b4.err" && fail "the key in the message" || ok "no key in the message"

echo
[ "$FAILED" = 0 ] && echo "s3media: all passed" || echo "s3media: $FAILED failed"
[ "$FAILED" = 0 ]

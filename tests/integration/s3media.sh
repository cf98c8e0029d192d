#!/usr/bin/env bash
# Media kept on S3 (issue 16 part 4, first step): the media bucket named by S3_ENDPOINT /
# S3_BUCKET / S3_REGION of .env.production, read with the AWS_* keys of .env.production and
# never with permafrost's own (which may be the repository's), against s3rver holding a
# Mastodon-shaped media bucket. Driven by tests/tools/pfcomp (built by `make unit`).
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

echo
[ "$FAILED" = 0 ] && echo "s3media: all passed" || echo "s3media: $FAILED failed"
[ "$FAILED" = 0 ]

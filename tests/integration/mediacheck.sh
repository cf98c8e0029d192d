#!/usr/bin/env bash
# Does the media match the database, and is a restored media tree the snapshot's (issue 11),
# against the harness's Mastodon-shaped server (tests/harness/mastodon.sh: its database names
# its files with Mastodon's real columns):
#   a clean server: every referenced file present, the one stray counted;
#   an orphan file: unreferenced count; a deleted cache file: cache-missing, still complete;
#   a deleted local file: the backup is incomplete (exit 3), one line names it, `snapshots`
#   shows it, `restore latest --live` passes over it;
#   --exclude-cache: which remote files were left out, by table; its restore prints the
#   tootctl commands that refetch them, with counts;
#   restore --force: a stray file, a stray directory and a stray symlink in the media tree
#   go (named at -v), what the symlink points to stays;
#   a restore failing in the media step (a full disk) says what was restored and prints the
#   command that finishes the job, and that command does;
#   the media in an S3 bucket (S3_ENABLED=true): left there without --media-from-s3;
#   mirrored with it and checked against the database as local ones are (an object the
#   database needs gone from the bucket: exit 3), the whole server restored from the mirror.
set -uo pipefail

SRC=${PF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PF=${PERMAFROST:-$SRC/permafrost}
. "$SRC/tests/harness/mastodon.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/pf-mediacheck.XXXXXX")
chmod 755 "$T"
harness_on_exit "rm -rf '$T'"
export PERMAFROST_PASSWORD=mediacheck-test-passphrase
export PERMAFROST_CACHE_DIR=$T/cache
REPO=$T/repo
L=$T/log
mkdir -p "$L"
. "$SRC/tests/lib/counting.sh"
# is DESCRIPTION WANT EXPR: a value of the last run's JSON output (EXPR indexes `d`).
is() {
    local got
    got=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($3)" "$OUT" 2>&1)
    if [ "$got" = "$2" ]; then ok "$1"; else fail "$1: got \"$got\", wanted \"$2\""; fi
}
pf() { "$PF" --repo "$REPO" "$@"; }
restore_to() {
    local dir=$1
    shift
    (
        . "$dir/pg.env"
        . "$dir/redis.env"
        PERMAFROST_PG_ADMIN_PASSWORD=$PG_SUPERPASS "$PF" --repo "$REPO" restore "$@" \
            --live "$dir/live" --pg-host 127.0.0.1 --pg-port "$PG_PORT" --pg-admin-user "$PG_SUPERUSER" \
            --redis-host 127.0.0.1 --redis-port "$REDIS_PORT"
    )
}
wipe() {
    local dir=$1
    pg_psql "$dir" -d postgres -c "DROP DATABASE IF EXISTS mastodon_production WITH (FORCE)" \
        -c "DROP ROLE IF EXISTS mastodon" -c "DROP ROLE IF EXISTS mastodon_readonly" >/dev/null 2>&1 ||
        die "cannot wipe the database of $dir"
    redis_cli "$dir" flushall >/dev/null || die "cannot flush the Redis of $dir"
    rm -rf "$dir/live"
    mkdir -p "$dir/live"
}
# files ROOT: one line per regular file below ROOT: path, content hash.
files() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum); }
started3() {
    local var=$1 fn=$2 base=$3 n
    shift 3
    for n in 1 2 3; do
        if "$fn" "$base.$n" "$@" >"$T/start.log" 2>&1; then
            printf -v "$var" '%s' "$base.$n"
            return 0
        fi
        echo "     (could not start $fn in $base.$n, retrying)"
    done
    return 1
}
started3 OLD mastodon_up "$T/old" || die "cannot start the source server"
started3 NEW mastodon_blank "$T/new" || die "cannot start the blank target servers"
SYS=$OLD/live/public/system
run init pf init
rc_is 0 "init"

# ---- a server whose media match its database ---------------------------------------------
run clean pf --json backup --live "$OLD/live"
rc_is 0 "backup of a server whose media match its database"
CLEAN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$OUT")
is "clean: complete" True 'd["complete"]'
# Local: a1b2c3d4.jpg, e5f6.mp4, its thumbnail, avatar 1, the old header of remote account 3
# (outside cache/), emoji 1, the site upload. Cache: 2 media (one with a snowflake id), the
# avatar of account 6, emoji 2, the preview card.
is "clean: local files referenced" 7 'd["media_check"]["referenced"]'
is "clean: all present" "7 0" 'd["media_check"]["present"], d["media_check"]["missing"]'
is "clean: the harness's one stray file is unreferenced" 1 'd["media_check"]["unreferenced"]'
is "clean: cache files referenced, present" "5 5 0" \
    'd["media_check"]["cache_referenced"], d["media_check"]["cache_present"], d["media_check"]["cache_missing"]'
run clean-ls pf ls "$CLEAN"
has "ls shows the comparison" "media check (originals): 7 referenced, 7 present, 0 missing, 1 unreferenced"

# ---- an orphan file, a deleted cache file ---------------------------------------------------
mastodon_file "$SYS/media_attachments/files/000/000/099/original/orphan.jpg" 1000 644 1700000000
mastodon_file "$SYS/cache/preview_cards/images/000/000/077/original/gone.jpg" 1000 644 1700000000
mv "$SYS/cache/custom_emojis/images/000/000/002/original/party.png" "$T/party.png"
run cachemiss pf --json backup --live "$OLD/live"
rc_is 0 "a deleted cache file does not make the backup incomplete"
is "cache-missing: complete" True 'd["complete"]'
is "orphan: unreferenced counted" 2 'd["media_check"]["unreferenced"]'
is "orphan in cache/: cache_unreferenced counted" 1 'd["media_check"]["cache_unreferenced"]'
is "cache-missing: counted" 1 'd["media_check"]["cache_missing"]'
is "cache-missing: named" "['cache/custom_emojis/images/000/000/002/original/party.png']" \
    'd["media_check"]["cache_missing_sample"]'
run cachemiss-snaps pf snapshots
has "snapshots shows cache-missing" "1 cache-missing (refetchable)"
hasnt "cache-missing is not incomplete" "INCOMPLETE"
mv "$T/party.png" "$SYS/cache/custom_emojis/images/000/000/002/original/party.png"
rm -rf "$SYS/media_attachments/files/000/000/099" "$SYS/cache/preview_cards/images/000/000/077"

# ---- a deleted local file -------------------------------------------------------------------
mv "$SYS/media_attachments/files/000/000/001/original/a1b2c3d4.jpg" "$T/a1b2c3d4.jpg"
run missing pf --json backup --live "$OLD/live"
rc_is 3 "a local file the database needs is missing: exit 3"
MISSING=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$OUT")
is "missing: incomplete" False 'd["complete"]'
is "missing: counted" "1 6" 'd["media_check"]["missing"], d["media_check"]["present"]'
is "missing: named" "['media_attachments/files/000/000/001/original/a1b2c3d4.jpg']" 'd["media_check"]["missing_sample"]'
[ "$(grep -c 'media file the database references is missing' "$ERR")" = 1 ] &&
    ok "missing: said in one line" || fail "missing: not said in one line: $(cat "$ERR")"
has "missing: the line names the file" "media_attachments/files/000/000/001/original/a1b2c3d4.jpg" "$ERR"
run missing-snaps pf snapshots
has "snapshots marks it incomplete" "INCOMPLETE"
has "snapshots says why" "incomplete: 1 media file the database references is missing"
run missing-check pf check
rc_is 0 "check: a snapshot lacking media is no damage to the repository"
has "check names the snapshot whose media miss files" "snapshot ${MISSING:0:8}: 1 media file the database references is missing"
run missing-check-json pf --json check
is "check --json: media_missing" "$MISSING 1" 'd["media_missing"][0]["snapshot"], d["media_missing"][0]["media_check"]["missing"]'
mv "$T/a1b2c3d4.jpg" "$SYS/media_attachments/files/000/000/001/original/a1b2c3d4.jpg"
wipe "$NEW"
run latest-passes restore_to "$NEW" latest
rc_is 0 "restore latest --live after an incomplete backup"
has "latest passes over the incomplete snapshot" "${MISSING:0:8}: incomplete"

# ---- --exclude-cache ----------------------------------------------------------------------
run nocache pf --json backup --live "$OLD/live" --exclude-cache
rc_is 0 "backup --exclude-cache"
NOCACHE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$OUT")
is "--exclude-cache: recorded" True 'd["media_check"]["exclude_cache"]'
is "--exclude-cache: remote files left out" "5 0" 'd["media_check"]["cache_excluded"], d["media_check"]["cache_missing"]'
is "--exclude-cache: which, by table" \
    "{'media_attachments': 2, 'accounts': 1, 'custom_emojis': 1, 'preview_cards': 1}" \
    'd["media_check"]["cache_absent_by_kind"]'
is "--exclude-cache: complete" True 'd["complete"]'
wipe "$NEW"
run nocache-restore restore_to "$NEW" "$NOCACHE"
rc_is 0 "restore of a snapshot without the cache"
has "refetch: media, with --days and --force, and the count" "bin/tootctl media refresh --days"
has "refetch: media count" "--force   # 2 remote media files"
has "refetch: avatars and headers" "bin/tootctl accounts refresh --all   # 1 remote avatar and header"
has "refetch: emoji said" "1 remote custom emoji image: no tootctl command refetches them"
has "refetch: cards said" "1 link preview image: no tootctl command refetches them"
# The --days reaches back to the oldest cached attachment (created 2024-02-02 + 39 min).
DAYS=$(sed -n 's/.*media refresh --days \([0-9]*\).*/\1/p' "$OUT")
WANT=$(( ($(date +%s) - $(date -d '2024-02-02 00:39:00Z' +%s) + 86399) / 86400 + 1 ))
[ "$DAYS" = "$WANT" ] && ok "refetch: --days $DAYS reaches the oldest" || fail "refetch: --days $DAYS, wanted $WANT"

# ---- restore --force makes the media tree the snapshot's ---------------------------------------
NSYS=$NEW/live/public/system
mkdir -p "$T/outside" "$NSYS/media_attachments/files/000/000/050/original"
echo precious >"$T/outside/keep"
echo stray >"$NSYS/stray.txt"
echo stray >"$NSYS/media_attachments/files/000/000/050/original/stray.jpg"
ln -s "$T/outside" "$NSYS/accounts/outside-link"
run force restore_to "$NEW" "$CLEAN" --force -v
rc_is 0 "restore --force over a tree with strays"
[ ! -e "$NSYS/stray.txt" ] && [ ! -e "$NSYS/media_attachments/files/000/000/050" ] &&
    [ ! -L "$NSYS/accounts/outside-link" ] && ok "restore --force: the strays are gone" ||
    fail "restore --force: strays left: $(cd "$NSYS" && find . -name 'stray*' -o -name 'outside-link' -o -path '*000/050*')"
[ "$(cat "$T/outside/keep" 2>/dev/null)" = precious ] && ok "restore --force: nothing followed out of the media root" ||
    fail "restore --force: $T/outside/keep was touched"
has "restore --force -v names what it removed" "stray.txt"
same "restore --force: the media tree is the snapshot's" <(files "$SYS") <(files "$NSYS")

# ---- a restore that fails in the media step ------------------------------------------------------
if [ "$(id -u)" = 0 ]; then
    SMALL=$T/small
    mkdir -p "$SMALL"
    mount -t tmpfs -o size=64k pf-test-media "$SMALL" || die "cannot mount a tmpfs on $SMALL"
    harness_on_exit "umount '$SMALL' 2>/dev/null"
    wipe "$NEW"
    run half restore_to "$NEW" "$CLEAN" --media-root "$SMALL"
    [ "$RC" != 0 ] && ok "restore onto a full media disk fails (exit $RC)" || fail "restore onto a full disk succeeded"
    # Secrets and the database come before the media; whatever comes after them is left.
    LINE=$(grep -m1 'restore stopped in the media step' "$ERR")
    case "$LINE" in
        *"restored: secrets, "*"; not restored: media"*) ok "half: says what was restored and what was not" ;;
        *) fail "half: no line saying what was restored in: $(cat "$ERR")" ;;
    esac
    CMD=$(sed -n 's/^  *permafrost \(.*restore .*\)$/\1/p' "$ERR" | head -1)
    case "$CMD" in
        *" --only media"*" --force") ok "half: the finishing command restores the media (and what follows), --force" ;;
        *) fail "half: no finishing command with --only media... --force in: $(cat "$ERR")" ;;
    esac
    mount -o remount,size=16m "$SMALL" || die "cannot grow the tmpfs"
    # The printed command as an operator pastes it (global options included).
    run finish bash -c "cd / && (. '$NEW/pg.env'; PERMAFROST_PG_ADMIN_PASSWORD=\$PG_SUPERPASS '$PF' $CMD)"
    rc_is 0 "half: the finishing command completes the restore"
    same "half: the media are the snapshot's" <(files "$SYS") <(files "$SMALL")
    mastodon_digest "$OLD" | sed -n '/^# redis/,/^# secrets/p' >"$T/r.old"
    mastodon_digest "$NEW" | sed -n '/^# redis/,/^# secrets/p' >"$T/r.new"
    same "half: Redis restored" "$T/r.old" "$T/r.new"
    umount "$SMALL"
else
    fail "the half-failed restore mounts a tmpfs: run as root"
fi

# ---- media kept on S3, mirrored (issue 16) ------------------------------------------------------
# The same media in an s3rver bucket instead of public/system: backup --live --media-from-s3
# checks them against the database as it does local ones, and a whole-server restore writes
# them into public/system.
. "$SRC/tests/harness/s3rver.sh"
s3rver_start "$T/s3" "" media >/dev/null || die "cannot start s3rver"
(cd "$SYS" && find . -type f | sed 's|^\./||') | while read -r k; do
    curl -sf -X PUT --data-binary @"$SYS/$k" -H 'Content-Type: application/octet-stream' \
        "$S3RVER_ENDPOINT/media/$k" >/dev/null || echo "PUT $k failed"
done >"$T/puts"
[ -s "$T/puts" ] && fail "filling the bucket: $(head -3 "$T/puts")"
cp "$OLD/live/.env.production" "$T/env.local"
sed -i 's/^S3_ENABLED=false/S3_ENABLED=true/' "$OLD/live/.env.production"
printf '%s\n' S3_BUCKET=media "S3_ENDPOINT=$S3RVER_ENDPOINT" S3_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER >>"$OLD/live/.env.production"
mv "$SYS" "$T/sys.local" # this machine has no media: they are in the bucket
run s3-plain pf --json backup --live "$OLD/live"
rc_is 0 "S3_ENABLED without --media-from-s3: the media stay in the bucket"
is "without the mirror: no media check" "skipped: S3_ENABLED=true None" \
    'd["components"]["media"]["status"], d.get("media_check")'
run s3 pf --json backup --live "$OLD/live" --media-from-s3
rc_is 0 "backup --media-from-s3 of a whole server"
S3SNAP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$OUT")
is "mirror: checked against the database" "7 7 0 1" \
    'd["media_check"]["referenced"], d["media_check"]["present"], d["media_check"]["missing"], d["media_check"]["unreferenced"]'
is "mirror: the cache too" "5 5" 'd["media_check"]["cache_referenced"], d["media_check"]["cache_present"]'
curl -sf -X DELETE "$S3RVER_ENDPOINT/media/media_attachments/files/000/000/001/original/a1b2c3d4.jpg" >/dev/null ||
    fail "DELETE from the bucket"
run s3-missing pf --json backup --live "$OLD/live" --media-from-s3
rc_is 3 "an object the database needs gone from the bucket: exit 3"
is "mirror: the missing object named" "1 ['media_attachments/files/000/000/001/original/a1b2c3d4.jpg']" \
    'd["media_check"]["missing"], d["media_check"]["missing_sample"]'
is "mirror: the rest not read again" "0" 'd["components"]["media"]["read"]'
wipe "$NEW"
run s3-restore restore_to "$NEW" "$S3SNAP"
rc_is 0 "restore --live of the mirrored snapshot"
same "restore: public/system holds the bucket's media" <(files "$T/sys.local") <(files "$NEW/live/public/system")
has "restore: what is left says Mastodon looks in the bucket" "Mastodon looks for them in bucket media at"
hasnt "restore: not 'the media were not in this snapshot'" "it was not in this snapshot"
mv "$T/sys.local" "$SYS"
cp "$T/env.local" "$OLD/live/.env.production"

[ "$FAILED" = 0 ] || {
    echo "$FAILED failed"
    exit 1
}
echo "all passed"

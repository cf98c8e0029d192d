#!/usr/bin/env bash
# What snapshots say they are, and what `latest` picks, through the CLI:
#   times listed in the reader's zone with the offset (a backup taken with
#   TZ=Europe/Berlin lists in order next to a UTC one); an incomplete plain backup
#   (exit 3) says so and names what it skipped; a whole-server snapshot, a partial --only
#   one and a plain backup each record their kind; `restore --live latest`, `ls`/`dump` of
#   the server's folders take the newest complete whole-server snapshot and say so, a
#   plain `restore latest` the newest plain backup; with only a partial snapshot `latest`
#   refuses, naming why; a media file that cannot be read makes the media component
#   "incomplete", never "ok". Needs the Mastodon harness (PostgreSQL, Redis on loopback).
set -uo pipefail

SRC=${PF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PF=${PERMAFROST:-$SRC/permafrost}
. "$SRC/tests/harness/mastodon.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/pf-snapshots.XXXXXX")
chmod 755 "$T"
harness_on_exit "chmod -R u+rwx '$T' 2>/dev/null; rm -rf '$T'"
export PERMAFROST_PASSWORD=snapshots-test-passphrase
export PERMAFROST_CACHE_DIR=$T/cache
export PERMAFROST_CONFIG=$T/empty.conf
: >"$PERMAFROST_CONFIG"
unset PERMAFROST_REPO PERMAFROST_PASSWORD_FILE PERMAFROST_HOST
REPO=$T/repo
L=$T # the captured outputs go where they went before
. "$SRC/tests/lib/counting.sh"
pf() { "$PF" --repo "$REPO" "$@"; }
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }

# ---- times: stored as UTC with the taker's offset, listed in the reader's zone -------------
mkdir -p "$T/plain/data"
echo one >"$T/plain/data/f1"
run init pf init
rc_is 0 "init"
TZ=UTC run b_utc pf --json backup "$T/plain/data"
rc_is 0 "backup with TZ=UTC"
UTC_ID=$(jget "$OUT" 'd["id"]')
echo two >"$T/plain/data/f2"
TZ=Europe/Berlin run b_berlin pf --json backup "$T/plain/data"
rc_is 0 "backup with TZ=Europe/Berlin"
BERLIN_ID=$(jget "$OUT" 'd["id"]')
TZ=UTC run list_utc pf snapshots
rc_is 0 "snapshots"
python3 - "$OUT" "$UTC_ID" "$BERLIN_ID" <<'PY' && ok "both list in UTC (+0000), in order" || { fail "times in the reader's zone"; show; }
import sys
lines = {l[:8]: l for l in open(sys.argv[1]) if l[:8] in (sys.argv[2][:8], sys.argv[3][:8])}
u, b = lines[sys.argv[2][:8]], lines[sys.argv[3][:8]]
tu, tb = u[10:35], b[10:35]
assert tu.endswith("+0000") and tb.endswith("+0000"), (tu, tb)
assert tb >= tu, (tu, tb)
PY
TZ=Europe/Berlin run list_berlin pf --json snapshots
python3 - "$OUT" "$BERLIN_ID" <<'PY' && ok "in Berlin the same snapshot lists with +0100 or +0200" || { fail "local time with offset"; show; }
import json, sys
s = [s for s in json.load(open(sys.argv[1])) if s["id"] == sys.argv[2]][0]
assert s["time_local"][-5:] in ("+0100", "+0200"), s
assert s["tz_offset"] in (3600, 7200), s
assert s["kind"] == "paths" and s["complete"] is True and s["paths"][0].endswith("/plain/data"), s
PY

# ---- an incomplete plain backup -----------------------------------------------------------
U=$T/unread
mkdir -p "$U/src/sub"
echo readable >"$U/src/ok"
echo secret >"$U/src/sub/locked"
chmod 000 "$U/src/sub/locked"
UREPO=$U/repo
if [ "$(id -u)" = 0 ]; then
    # root reads anything: nobody runs a copy of the binary, owner of its repository.
    AS=(runuser -u nobody --)
    mkdir "$UREPO"
    chown nobody "$UREPO" "$U/src/sub/locked"
    chmod 755 "$U" "$U/src" "$U/src/sub"
    install -m 755 "$PF" "$U/permafrost"
    UPF=$U/permafrost
else
    AS=()
    UPF=$PF
fi
upf() { "${AS[@]}" env PERMAFROST_CACHE_DIR="$U/cache" "$UPF" --repo "$UREPO" "$@"; }
run u_init upf init
rc_is 0 "init (unreadable-file repository)"
run u_backup upf backup "$U/src"
rc_is 3 "backup with an unreadable file: exit 3"
run u_json upf --json snapshots
python3 - "$OUT" "$U/src/sub/locked" <<'PY' && ok "the snapshot records complete=false and the skipped path" || { fail "incomplete snapshot fields"; show; }
import json, sys
s = json.load(open(sys.argv[1]))[-1]
assert s["complete"] is False and s["skipped_count"] == 1 and s["skipped"] == [sys.argv[2]], s
PY
run u_list upf snapshots
has "snapshots marks it INCOMPLETE" "INCOMPLETE"
has "snapshots names the skipped file" "could not be read: $U/src/sub/locked"

# ---- Mastodon: whole, partial and plain snapshots, and what latest picks ---------------------
started=0
for n in 1 2 3; do
    if mastodon_up "$T/srv.$n" >"$T/start.log" 2>&1; then
        SRV=$T/srv.$n
        started=1
        break
    fi
done
[ $started = 1 ] || die "cannot start the Mastodon harness: $(tail -3 "$T/start.log")"
LIVE=$SRV/live
run full pf --json backup --live "$LIVE"
rc_is 0 "backup --live (whole server)"
FULL=$(jget "$OUT" 'd["id"]')
run part pf --json backup --live "$LIVE" --only db
rc_is 0 "backup --live --only db"
PART=$(jget "$OUT" 'd["id"]')
run plain pf --json backup "$T/plain/data"
rc_is 0 "a plain backup after them"
PLAIN=$(jget "$OUT" 'd["id"]')
run kinds pf --json snapshots
python3 - "$OUT" "$FULL" "$PART" "$PLAIN" <<'PY' && ok "kinds: mastodon, mastodon-partial, paths" || { fail "kinds"; show; }
import json, sys
d = {s["id"]: s for s in json.load(open(sys.argv[1]))}
full, part, plain = d[sys.argv[2]], d[sys.argv[3]], d[sys.argv[4]]
assert full["kind"] == "mastodon" and full["complete"], full
assert all(c["status"] == "ok" for c in full["components"].values()), full["components"]
assert part["kind"] == "mastodon-partial" and list(part["components"]) == ["postgres"], part
assert plain["kind"] == "paths", plain
PY
python3 "$SRC/tests/lib/check_json.py" "$SRC/docs/JSON.md" snapshots "$OUT" >/dev/null &&
    ok "whole-server snapshots follow docs/JSON.md" || { fail "snapshots --json of whole-server snapshots against docs/JSON.md"; show; }
run kinds_text pf snapshots
has "snapshots shows the partial kind" "mastodon-partial"

# restore --live latest: only secrets, so no database server is touched.
mkdir -p "$T/target"
run restore_live pf restore latest --live "$T/target" --only secrets
rc_is 0 "restore --live latest --only secrets after a partial and a plain backup"
has "it says it took the whole-server snapshot" "latest: snapshot ${FULL:0:8}"
has "it says why the newer ones were passed over" "passed over ${PLAIN:0:8}: paths, ${PART:0:8}: mastodon-partial"
cmp -s "$T/target/.env.production" "$LIVE/.env.production" && ok "the secrets came from the whole-server snapshot" ||
    fail "restored .env.production differs"
# With --only, latest may be a partial snapshot holding what is asked for (the database
# here: the newer partial one). The choice is made before connecting (port 1: refused).
run restore_db pf restore latest --live "$T/target-db" --only db --pg-host 127.0.0.1 --pg-port 1
has "restore --live --only db: latest is the newest snapshot with the database" \
    "latest: snapshot ${PART:0:8}" "$ERR"
run restore_all pf restore latest --live "$T/target-all" --pg-host 127.0.0.1 --pg-port 1
has "restore --live without --only: latest is the whole-server snapshot" \
    "latest: snapshot ${FULL:0:8}" "$ERR"
run ls_secrets pf ls latest secrets
rc_is 0 "ls latest secrets"
has "ls of the server's folders takes the whole-server snapshot" "snapshot ${FULL:0:8}"
run dump_globals pf dump latest postgres/globals.sql
rc_is 0 "dump latest postgres/globals.sql"
has "dump names the whole-server snapshot" "latest: snapshot ${FULL:0:8}" "$ERR"
run restore_plain pf restore latest --target "$T/out-plain"
rc_is 0 "plain restore latest"
has "plain latest is the newest plain backup" "latest: snapshot ${PLAIN:0:8}" "$ERR"
[ -f "$T/out-plain/data/f2" ] && ok "the plain backup was restored" || fail "plain restore: no data/f2"
run restore_media pf restore latest --target "$T/out-media" media
rc_is 0 "plain restore latest media (a Mastodon folder)"
has "restore of media/ takes the whole-server snapshot" "latest: snapshot ${FULL:0:8}" "$ERR"

# Only a partial (and incomplete) snapshot: latest for the server refuses, saying why.
M=$T/mrepo
L2=$T/live2
cp -a "$LIVE" "$L2"
bad=$(find "$L2/public/system" -type f | head -1)
chmod 000 "$bad"
if [ "$(id -u)" = 0 ]; then
    mkdir "$M"
    chown -R nobody "$M" "$L2"
    chmod 755 "$L2"
fi
mpf() { "${AS[@]}" env PERMAFROST_CACHE_DIR="$T/mcache" "$UPF" --repo "$M" "$@"; }
run m_init mpf init
rc_is 0 "init (media repository)"
run m_backup mpf --json backup --live "$L2" --only media
rc_is 3 "backup --live --only media with an unreadable file: exit 3"
python3 - "$OUT" "$bad" <<'PY' && ok "media component is incomplete, not ok; the snapshot names the file" || { fail "media component status"; show; }
import json, sys
s = json.load(open(sys.argv[1]))
assert s["components"]["media"]["status"] == "incomplete", s["components"]
assert s["complete"] is False and s["skipped"] == [sys.argv[2]], s
assert s["kind"] == "mastodon-partial", s
PY
run m_ls mpf ls latest media
rc_is 13 "ls latest media with no whole-server snapshot: not found"
has "the refusal says what latest means and what there is" "mastodon-partial"

[ $FAILED = 0 ] || die "$FAILED checks failed"
echo "snapshots: all passed"

#!/usr/bin/env bash
# End-to-end tests of `permafrost backup --live` and `restore --live` through the CLI,
# against a Mastodon-shaped server (tests/harness/mastodon.sh: real PostgreSQL and Redis on
# loopback, a live/ directory) and blank servers to restore onto:
#   round trip with identical digests; snapshots/ls/dump show the manifest and the layout;
#   no secret in any output; a busy day and its incremental snapshot, the first snapshot
#   still restoring the old state; --exclude-cache; --only on backup and restore;
#   refusals (exit 6, target unchanged) and --force; .env.production variants and errors;
#   a Redis that refuses SYNC; a pg_dump that dies mid-dump (no snapshot, the next backup
#   reuses what was uploaded); S3_ENABLED; PostgreSQL down and a wrong DB password.
# Component-level checks (pfcomp) live in components.sh; this one drives the binary.
set -uo pipefail

SRC=${PF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PF=${PERMAFROST:-$SRC/permafrost}
. "$SRC/tests/harness/mastodon.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/pf-mastodon.XXXXXX")
chmod 755 "$T"
harness_on_exit "rm -rf '$T'"
L=$T/log # every captured output of permafrost; grepped for secrets at the end
mkdir -p "$L"
export PERMAFROST_PASSWORD=mastodon-test-passphrase
export PERMAFROST_CACHE_DIR=$T/cache
REPO=$T/repo
. "$SRC/tests/lib/counting.sh"

section() { sed -n "/^# $2\$/,/^# /p" "$1" | sed '/^# /d'; }

pf() { "$PF" --repo "$REPO" "$@"; }
nsnap() { "$PF" --repo "${1:-$REPO}" --json snapshots 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# jget FILE EXPR: a value out of a JSON document (EXPR indexes `d`, e.g. d["stats"]["bytes"]).
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }

# restore_to TARGET ARGS...: `permafrost restore ARGS --live TARGET/live` onto TARGET's servers.
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
# wipe TARGET: back to a blank machine (no database, no mastodon roles, empty Redis and live/).
wipe() {
    local dir=$1
    pg_psql "$dir" -d postgres -c "DROP DATABASE IF EXISTS mastodon_production WITH (FORCE)" \
        -c "DROP ROLE IF EXISTS mastodon" -c "DROP ROLE IF EXISTS mastodon_readonly" >/dev/null 2>&1 ||
        die "cannot wipe the database of $dir"
    redis_cli "$dir" flushall >/dev/null || die "cannot flush the Redis of $dir"
    rm -rf "$dir/live"
    mkdir -p "$dir/live"
}
# variant NAME SED-EXPR: a copy of the source live/ whose .env.production went through SED-EXPR.
variant() {
    rm -rf "$T/$1"
    cp -a "$OLD/live" "$T/$1"
    sed -i "$2" "$T/$1/.env.production"
    echo "$T/$1"
}

# ---- servers ------------------------------------------------------------------------------
# started3 VAR FUNCTION BASE [ARGS...]: FUNCTION BASE.N ARGS for N = 1, 2, 3 until one starts
# (a port the harness found free can be taken by another job, or by an outgoing
# connection's ephemeral port, before the server binds it); VAR is set to the directory.
started3() {
    local var=$1 fn=$2 base=$3 n
    shift 3
    for n in 1 2 3; do
        if "$fn" "$base.$n" "$@" >"$T/start.log" 2>&1; then
            printf -v "$var" '%s' "$base.$n"
            return 0
        fi
        echo "     (could not start $fn in $base.$n, retrying: $(grep -m1 -i 'in use\|error\|fail' "$T/start.log"))"
    done
    return 1
}
started3 OLD mastodon_up "$T/old" || die "cannot start the source server"
started3 NEW mastodon_blank "$T/new" || die "cannot start the blank target servers"
OLD_PGPORT=$(. "$OLD/pg.env" && echo "$PG_PORT")
SECRET_KEY_BASE=$(sed -n 's/^SECRET_KEY_BASE=//p' "$OLD/live/.env.production")
OTP_SECRET=$(sed -n 's/^OTP_SECRET=//p' "$OLD/live/.env.production")
SMTP_PASSWORD=$(sed -n "s/^SMTP_PASSWORD='\(.*\)'/\1/p" "$OLD/live/.env.production")
[ ${#SECRET_KEY_BASE} -ge 64 ] && [ -n "$OTP_SECRET" ] && [ -n "$SMTP_PASSWORD" ] ||
    die "cannot read the harness secrets"
mastodon_digest "$OLD" >"$T/d0"
mastodon_digest "$NEW" >"$T/blank.digest"

run init pf init
rc_is 0 "init"

# ---- first backup, what it shows ------------------------------------------------------------
run backup1 pf backup --live "$OLD/live"
rc_is 0 "backup --live of the whole server"
has "backup names every component" "secrets:"
has "backup ran pg_dump" "pg_dump mastodon_production"
run snaps1 pf --json snapshots
S1=$(jget "$OUT" 'd[-1]["id"]')
[ "$(nsnap)" = 1 ] && ok "one snapshot" || fail "one snapshot: $(nsnap)"
for c in secrets postgres redis media; do
    [ "$(jget "$OUT" "d[-1]['components']['$c']['status']")" = ok ] && ok "components: $c ok" ||
        fail "components: $c not ok in $(cat "$OUT")"
done
[ "$(jget "$OUT" 'd[-1]["manifest"]["accounts"]')" = 60 ] &&
    [ "$(jget "$OUT" 'd[-1]["manifest"]["statuses"]')" = 500 ] &&
    [ "$(jget "$OUT" 'd[-1]["manifest"]["media_attachments"]')" = 40 ] &&
    ok "manifest row counts (JSON)" || fail "manifest row counts: $(jget "$OUT" 'd[-1]["manifest"]')"
run snapshots pf snapshots
rc_is 0 "snapshots"
has "snapshots: manifest PostgreSQL version" "postgres=1"
has "snapshots: manifest pg_dump version" "pg_dump=1"
has "snapshots: manifest Redis version" "redis=7"
has "snapshots: row counts" "accounts=60 statuses=500 media_attachments=40"
has "snapshots: domain" "domain=harness.example"
run ls1 pf ls latest
rc_is 0 "ls latest"
has "ls: manifest" "accounts=60"
for p in /secrets/.env.production /postgres/globals.sql /postgres/mastodon_production.dump /redis/dump.rdb \
    /media/media_attachments/files/000/000/001/original/a1b2c3d4.jpg /media/cache/accounts/avatars/000/000/006/original/remote.png \
    /media/media_attachments/files/000/000/002/original/empty.bin; do
    has "ls: $p" " $p"
done
grep -E ' /secrets/\.env\.production$' "$OUT" | grep -q '^-rw-------' && ok "ls: .env.production is 0600" ||
    fail "ls: .env.production mode: $(grep env.production "$OUT")"
run dumplist bash -c "'$PF' --repo '$REPO' dump latest postgres/mastodon_production.dump | '$HARNESS_PGBIN/pg_restore' --list"
rc_is 0 "dump latest postgres/mastodon_production.dump | pg_restore --list"
has "pg_restore --list sees the statuses table" "TABLE public statuses mastodon"
has "pg_restore --list sees the large object" "BLOB"
"$PF" --repo "$REPO" dump latest secrets/.env.production >"$T/env.dumped" 2>/dev/null # not in $L: it is the secret
cmp -s "$T/env.dumped" "$OLD/live/.env.production" && ok "dump of secrets/.env.production is byte-exact" ||
    fail "dump of secrets/.env.production differs"
run dumpglobals pf dump latest postgres/globals.sql
has "globals.sql creates the readonly role" "CREATE ROLE mastodon_readonly"

# ---- round trip onto blank servers ------------------------------------------------------------
run restore1 restore_to "$NEW" latest
rc_is 0 "restore latest onto blank servers"
has "restore says what is left to do" "tootctl feeds build"
hasnt "no empty Mastodon version in the steps" "same version: )"
mastodon_digest "$NEW" >"$T/d.new"
same "restored server has the original's digest" "$T/d0" "$T/d.new"
grep -q "login mastodon with DB_PASS: ok" "$T/d.new" && ok "restored owner logs in with DB_PASS" || fail "restored owner cannot log in"

# ---- refusals: each condition alone, target unchanged; then --force --------------------------
refuse() { # DESCRIPTION SETUP-COMMAND
    wipe "$NEW"
    eval "$2"
    mastodon_digest "$NEW" >"$T/d.before"
    run "refuse-$1" restore_to "$NEW" latest
    rc_is 6 "restore refuses over $1 (exit 6)"
    has "refusal over $1 says --force" "--force"
    hasnt "refusal over $1 names the component once" "redis: redis:"
    mastodon_digest "$NEW" >"$T/d.after"
    same "refusal over $1 changed nothing" "$T/d.before" "$T/d.after"
}
refuse "an existing .env.production" 'echo "LOCAL_DOMAIN=keep.example" >"$NEW/live/.env.production"'
refuse "a database with tables" 'run prep restore_to "$NEW" latest --only db; [ $RC = 0 ] || fail "restore --only db for the refusal test: exit $RC"'
refuse "a non-empty media directory" 'mkdir -p "$NEW/live/public/system/accounts" && echo keep >"$NEW/live/public/system/accounts/keep.txt"'
refuse "a non-empty Redis" 'redis_cli "$NEW" set keep me >/dev/null'
[ -f "$NEW/live/.env.production" ] && fail "a refused restore wrote .env.production" || ok "a refused restore wrote no .env.production"

# ---- a busy day: second snapshot restores the new state, the first the old one --------------
mastodon_churn "$OLD" >/dev/null 2>&1 || die "churn failed"
mastodon_digest "$OLD" >"$T/d1"
cmp -s "$T/d0" "$T/d1" && die "churn changed nothing"
run backup2 pf --json backup --live "$OLD/live"
rc_is 0 "backup after a busy day"
S2=$(jget "$OUT" 'd["id"]')
[ "$(jget "$OUT" 'd["parent"]')" = "$S1" ] && ok "second snapshot's parent is the first" || fail "parent: $(jget "$OUT" 'd.get("parent")')"
[ "$(jget "$OUT" 'd["stats"]["files_unchanged"] > 0')" = True ] && ok "unchanged media files skipped" ||
    fail "no unchanged files in $(jget "$OUT" 'd["stats"]')"
[ "$(jget "$OUT" 'd["manifest"]["statuses"]')" = 525 ] && ok "manifest counts the new posts" ||
    fail "manifest statuses: $(jget "$OUT" 'd["manifest"]')"

# --force over a server holding the first snapshot's state (every refusal condition at once).
wipe "$NEW"
run restore-s1 restore_to "$NEW" "$S1"
rc_is 0 "restore of the first snapshot onto blank servers"
mastodon_digest "$NEW" >"$T/d.new"
same "first snapshot still restores the old state" "$T/d0" "$T/d.new"
run restore-noforce restore_to "$NEW" "$S2"
rc_is 6 "restore over a whole server refuses"
run restore-force restore_to "$NEW" "$S2" --force
rc_is 0 "restore --force over a whole server"
mastodon_digest "$NEW" >"$T/d.new"
# --force: the restored server is the snapshot's, media too (the first snapshot's cache
# file that the busy day expired is gone).
same "restore --force gives the churned server's digest, media included" "$T/d1" "$T/d.new"
wipe "$NEW"
run restore2 restore_to "$NEW" latest
rc_is 0 "restore of the busy-day snapshot onto blank servers"
mastodon_digest "$NEW" >"$T/d.new"
same "busy-day snapshot restores exactly the churned state" "$T/d1" "$T/d.new"

# ---- restore --only -----------------------------------------------------------------------------
wipe "$NEW"
run restore-only-db restore_to "$NEW" latest --only db
rc_is 0 "restore --only db"
mastodon_digest "$NEW" >"$T/d.new"
same "restore --only db: the database" <(section "$T/d1" database) <(section "$T/d.new" database)
same "restore --only db: Redis untouched" <(section "$T/blank.digest" redis) <(section "$T/d.new" redis)
[ ! -e "$NEW/live/.env.production" ] && [ ! -e "$NEW/live/public" ] && ok "restore --only db: no secrets, no media" ||
    fail "restore --only db wrote files: $(ls -A "$NEW/live")"
wipe "$NEW"
run restore-only-sm restore_to "$NEW" latest --only secrets,media
rc_is 0 "restore --only secrets,media"
mastodon_digest "$NEW" >"$T/d.new"
same "restore --only secrets,media: secrets" <(section "$T/d1" secrets) <(section "$T/d.new" secrets)
same "restore --only secrets,media: media" <(section "$T/d1" media) <(section "$T/d.new" media)
same "restore --only secrets,media: no database" <(section "$T/blank.digest" database) <(section "$T/d.new" database)
run restore-only-bad restore_to "$NEW" latest --only db,nonsense
rc_is 2 "restore --only with an unknown component is a usage error"
has "--only error names the component" "nonsense"

# ---- backup --exclude-cache and --only ---------------------------------------------------------
run backup-nocache pf --json backup --live "$OLD/live" --exclude-cache --tag nocache
rc_is 0 "backup --exclude-cache"
[ "$(jget "$OUT" 'd["components"]["media"]["exclude_cache"]')" = True ] && ok "components record exclude_cache" ||
    fail "exclude_cache not recorded: $(jget "$OUT" 'd["components"]')"
run ls-nocache pf ls "$(jget "$OUT" 'd["id"]')"
hasnt "--exclude-cache: no media/cache" "/media/cache"
has "--exclude-cache: local uploads kept" "/media/media_attachments/files/000/000/003/original/new.jpg"

run backup-onlydb pf --json backup --live "$OLD/live" --only db --tag onlydb
rc_is 0 "backup --only db"
DBONLY=$(jget "$OUT" 'd["id"]')
[ "$(jget "$OUT" 'sorted(d["components"])')" = "['postgres']" ] && ok "--only db records only postgres" ||
    fail "--only db components: $(jget "$OUT" 'd["components"]')"
run ls-onlydb pf ls "$DBONLY"
has "--only db: the dump" "/postgres/mastodon_production.dump"
hasnt "--only db: no secrets" "/secrets"
hasnt "--only db: no redis" "/redis"
hasnt "--only db: no media" "/media"

run backup-onlysm pf --json backup --live "$OLD/live" --only secrets,media --tag files
rc_is 0 "backup --only secrets,media"
SMONLY=$(jget "$OUT" 'd["id"]')
[ "$(jget "$OUT" 'sorted(d["components"])')" = "['media', 'secrets']" ] && ok "--only secrets,media records those two" ||
    fail "--only secrets,media components: $(jget "$OUT" 'd["components"]')"
run ls-onlysm pf ls "$SMONLY"
has "--only secrets,media: secrets" "/secrets/.env.production"
has "--only secrets,media: media" "/media/accounts/avatars/000/000/001/original/avatar.png"
hasnt "--only secrets,media: no postgres" "/postgres"
hasnt "--only secrets,media: no redis" "/redis"
run backup-onlybad pf backup --live "$OLD/live" --only redis,disk
rc_is 2 "backup --only with an unknown component is a usage error"

# A snapshot without secrets: restore needs the .env.production it was taken with.
wipe "$NEW"
run restore-dbonly restore_to "$NEW" "$DBONLY" --only db
if [ $RC = 0 ]; then
    mastodon_digest "$NEW" >"$T/d.new"
    same "restore of a --only db snapshot: the database" <(section "$T/d1" database) <(section "$T/d.new" database)
else
    rc_is "13" "restore of a --only db snapshot fails clearly when it needs the secrets"
    has "restore of a --only db snapshot says why" "secrets"
fi

# ---- .env.production variants ---------------------------------------------------------------------
enc_pass=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$MASTODON_DB_PASS")
V=$(variant env-url "/^DB_\(HOST\|PORT\|NAME\|USER\|PASS\)=/d; /^export DB_HOST=/d; \$a DATABASE_URL=postgresql://mastodon:$enc_pass@127.0.0.1:$OLD_PGPORT/mastodon_production")
grep -q '^DB_' "$V/.env.production" && die "the DATABASE_URL variant still has DB_ keys"
run backup-url pf --json backup --live "$V" --only secrets,db --tag url
rc_is 0 "backup with DATABASE_URL"
wipe "$NEW"
run restore-url restore_to "$NEW" "$(jget "$OUT" 'd["id"]')" --only secrets,db
rc_is 0 "restore of the DATABASE_URL snapshot"
mastodon_digest "$OLD" >"$T/d.old"
mastodon_digest "$NEW" >"$T/d.new"
same "DATABASE_URL: database round trip" <(section "$T/d.old" database) <(section "$T/d.new" database)
hasnt "DATABASE_URL: encoded password never shown" "$enc_pass" "$L"/backup-url.* "$L"/restore-url.*

V=$(variant env-quoted "s/^LOCAL_DOMAIN=.*/LOCAL_DOMAIN=\"quoted.example\" # the domain/; s/^DB_NAME=.*/DB_NAME='mastodon_production'/; s/^REDIS_HOST=.*/REDIS_HOST=\"127.0.0.1\"/; s/^DB_USER=.*/  DB_USER = mastodon/")
run backup-quoted pf --json backup --live "$V" --tag quoted
rc_is 0 "backup with quoted values, a comment, spaces and export"
[ "$(jget "$OUT" 'd["manifest"]["domain"]')" = quoted.example ] && ok "quoted LOCAL_DOMAIN read without quotes and comment" ||
    fail "quoted domain: $(jget "$OUT" 'd["manifest"]')"
[ "$(jget "$OUT" 'len(d["components"])')" = 5 ] && ok "quoted values: every component backed up" ||
    fail "quoted: $(jget "$OUT" 'd["components"]')"

n_before=$(nsnap)
V=$(variant env-nodomain '/^LOCAL_DOMAIN=/d')
run backup-nodomain pf backup --live "$V"
rc_is 2 "missing LOCAL_DOMAIN is a usage error"
has "missing key named" "LOCAL_DOMAIN"
has "the file is named" "$V/.env.production"
V=$(variant env-badport 's/^DB_PORT=.*/DB_PORT=54s32/')
run backup-badport pf backup --live "$V"
rc_is 2 "invalid DB_PORT is a usage error"
has "invalid key named" "DB_PORT"
V=$(variant env-badredis 's/^REDIS_PORT=.*/REDIS_PORT=99999/')
run backup-badredis pf backup --live "$V"
rc_is 2 "invalid REDIS_PORT is a usage error"
has "invalid Redis key named" "REDIS_PORT"
V=$(variant env-badurl 's|^DB_HOST=.*|DATABASE_URL=mysql://x@y/z|; s|^export DB_HOST=.*|DATABASE_URL=mysql://x@y/z|')
run backup-badurl pf backup --live "$V"
rc_is 2 "invalid DATABASE_URL is a usage error"
has "invalid DATABASE_URL named" "DATABASE_URL"
run backup-noenv pf backup --live "$T/nowhere"
rc_is "2 13" "a live directory without .env.production"
has "missing .env.production named" "$T/nowhere/.env.production"
[ "$(nsnap)" = "$n_before" ] && ok "no snapshot from a bad .env.production" || fail "snapshots: $n_before -> $(nsnap)"

# ---- S3_ENABLED=true -------------------------------------------------------------------------------
V=$(variant env-s3 's/^S3_ENABLED=.*/S3_ENABLED=true/; $a S3_BUCKET=files.example')
run backup-s3 pf --json backup --live "$V" --only secrets,media --tag s3
rc_is 0 "backup with S3_ENABLED=true"
has "S3: the warning says media is not in the snapshot" "S3_ENABLED=true" "$ERR"
has "S3: the warning says so plainly" "NOT in this snapshot" "$ERR"
case "$(jget "$OUT" 'd["components"]["media"]["status"]')" in skipped*) ok "S3: media recorded as skipped" ;;
*) fail "S3: media status: $(jget "$OUT" 'd["components"]')" ;; esac
run ls-s3 pf ls "$(jget "$OUT" 'd["id"]')"
hasnt "S3: no media in the snapshot" "/media"

# ---- a Redis that refuses SYNC (ACL user without +sync/+psync) ---------------------------------------
started3 R2 redis_start "$T/redis-acl" --user backup backup-pw '~*' '&*' '+@all' -sync -psync || die "cannot start the ACL Redis"
R2_PORT=$(. "$R2/redis.env" && echo "$REDIS_PORT")
{
    echo "LPUSH queue:default job1 job2 job3"
    echo "HSET sidekiq:stats processed 42"
    echo "SET session:x y EX 86400"
    echo "SELECT 2"
    echo "SET in-db-2 z"
} | redis_cli "$R2" >/dev/null
V=$(variant env-acl "s/^REDIS_PORT=.*/REDIS_PORT=$R2_PORT/; \$a REDIS_USER=backup\nREDIS_PASSWORD=backup-pw")
run backup-acl pf --json backup --live "$V" --only secrets,redis --tag acl
if [ $RC = 0 ]; then
    ok "Redis refusing SYNC: backup succeeds"
    [ "$(jget "$OUT" 'd["components"]["redis"]["method"]')" = BGSAVE ] && ok "Redis refusing SYNC: fell back to BGSAVE" ||
        fail "Redis method: $(jget "$OUT" 'd["components"]["redis"]')"
    has "Redis refusing SYNC: warns about the fallback" "BGSAVE" "$ERR"
    # The RDB it took, loaded by a fresh redis-server, holds the same data.
    "$PF" --repo "$REPO" dump "$(jget "$OUT" 'd["id"]')" redis/dump.rdb >"$T/bgsave.rdb" 2>"$L/dump-rdb.err"
    redis-check-rdb "$T/bgsave.rdb" >"$T/check-rdb.log" 2>&1 && ok "BGSAVE RDB passes redis-check-rdb" ||
        { fail "BGSAVE RDB fails redis-check-rdb"; tail -5 "$T/check-rdb.log" | sed 's/^/     | /'; }
    rdb_into() { mkdir -p "$1/redis" && cp "$T/bgsave.rdb" "$1/redis/dump.rdb" && redis_start "$1"; }
    started3 R3 rdb_into "$T/redis-check" || fail "the BGSAVE RDB does not load into redis-server"
    [ "$(redis_cli "$R3" debug digest)" = "$(redis_cli "$R2" debug digest)" ] && ok "BGSAVE RDB holds the same data" ||
        fail "BGSAVE RDB digest differs"
    redis_stop "$R3"
else
    rc_is 5 "Redis refusing SYNC: fails as a component failure"
    has "Redis refusing SYNC: names redis" "redis"
fi
hasnt "Redis password never shown" "backup-pw" "$L"/backup-acl.*
redis_stop "$R2"

# ---- wrong database password ---------------------------------------------------------------------------
n_before=$(nsnap)
V=$(variant env-badpw 's/^DB_PASS=.*/DB_PASS=not-the-password-42/')
run backup-badpw pf backup --live "$V"
rc_is 12 "wrong DB password: exit 12 (credentials refused)"
has "wrong DB password names postgres" "postgres"
has "wrong DB password: says the password is DB_PASS of .env.production" "DB_PASS of $V/.env.production was refused"
hasnt "wrong DB password not shown" "not-the-password-42"
has "wrong DB password: says no snapshot was written" "no snapshot"
[ "$(nsnap)" = "$n_before" ] && ok "wrong DB password: no snapshot" || fail "wrong DB password: snapshots $n_before -> $(nsnap)"

# ---- a pg_dump that dies mid-dump ------------------------------------------------------------------------
# A table of ~20 MB so the dump spans several chunks (min 512 KiB, cut once 8 MiB are buffered).
(
    . "$OLD/pg.env"
    PGPASSWORD=$MASTODON_DB_PASS "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" \
        -U mastodon -d mastodon_production -c "CREATE TABLE archived_payloads (id int PRIMARY KEY, body text)" \
        -c "INSERT INTO archived_payloads SELECT g, (SELECT string_agg(md5((g * 16 + k)::text), '') FROM generate_series(1, 16) k) FROM generate_series(1, 40000) g"
) >/dev/null || die "cannot add the large table"
mkbin() { # NAME BODY: PERMAFROST_PG_BINDIR with the real clients and a pg_dump wrapper running BODY
    local d=$T/$1 f
    mkdir -p "$d"
    for f in "$HARNESS_PGBIN"/*; do ln -sf "$f" "$d/"; done
    rm -f "$d/pg_dump"
    cat >"$d/pg_dump" <<EOS
#!/bin/bash
real=$HARNESS_PGBIN/pg_dump
case "\${1:-}" in --version|-V) exec "\$real" "\$@" ;; esac
# Only the database dump misbehaves, not the schema-only pass for database-level grants.
case " \$* " in *" --schema-only "*) exec "\$real" "\$@" ;; esac
$2
EOS
    chmod 755 "$d/pg_dump"
    echo "$d"
}
KILLBIN=$(mkbin bin-kill '"$real" "$@" | head -c 15000000; kill -9 $$')
EXIT1BIN=$(mkbin bin-exit1 '"$real" "$@"; echo "pg_dump: error: simulated failure after the dump" >&2; exit 1')

# The same server into a second repository whose only snapshot holds the secrets.
REPO2=$T/repo2
run init2 "$PF" --repo "$REPO2" init
run backup-prev "$PF" --repo "$REPO2" backup --live "$OLD/live" --only secrets --tag prev
rc_is 0 "second repository: a first snapshot"
PREV=$("$PF" --repo "$REPO2" --json snapshots | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
run backup-killed env PERMAFROST_PG_BINDIR="$KILLBIN" "$PF" --repo "$REPO2" backup --live "$OLD/live"
rc_is 5 "pg_dump killed mid-dump: component failure"
has "pg_dump killed: names postgres" "postgres"
has "pg_dump killed: reports the signal" "signal 9"
hasnt "pg_dump killed: the component is named once" "postgres: postgres:"
has "pg_dump killed: no snapshot written" "no snapshot was written"
run backup-exit1 env PERMAFROST_PG_BINDIR="$EXIT1BIN" "$PF" --repo "$REPO2" backup --live "$OLD/live"
rc_is 5 "pg_dump exiting 1 after its output: component failure"
has "pg_dump exit 1: its stderr is shown" "simulated failure after the dump"
[ "$(nsnap "$REPO2")" = 1 ] && ok "failed dumps wrote no snapshot" || fail "snapshots after failed dumps: $(nsnap "$REPO2")"
run check2 "$PF" --repo "$REPO2" check --read-data
rc_is 0 "check --read-data after failed backups"
"$PF" --repo "$REPO2" dump "$PREV" secrets/.env.production 2>/dev/null | cmp -s - "$OLD/live/.env.production" &&
    ok "the previous snapshot is intact" || fail "the previous snapshot no longer reads back"
run backup-after "$PF" --repo "$REPO2" --json backup --live "$OLD/live"
rc_is 0 "the next normal backup succeeds"
total=$(jget "$OUT" 'd["stats"]["bytes"]')
new=$(jget "$OUT" 'd["stats"]["bytes_new"]')
stored=$(jget "$OUT" 'd["stats"]["bytes_stored"]')
dumpb=$(jget "$OUT" 'd["components"]["postgres"]["dump_bytes"]')
echo "     (total $total bytes, dump $dumpb, new $new, stored $stored)"
[ -n "$total" ] && [ "$dumpb" -gt 16000000 ] 2>/dev/null && ok "the dump is large enough to span chunks" || fail "dump size $dumpb"
[ -n "$new" ] && [ "$stored" -lt "$total" ] && ok "bytes_stored < total" || fail "bytes_stored $stored, total $total"
# The killed run uploaded the chunks cut before it died (at least the first ~6 MB of the dump).
[ -n "$new" ] && [ $((total - new)) -gt 4000000 ] && ok "the next backup reused what the failed one uploaded" ||
    fail "reused only $((total - new)) bytes of $total"
run check2b "$PF" --repo "$REPO2" check
rc_is 0 "check after the recovery backup"

# ---- a snapshot from a compromised server: psql commands inside globals.sql ------------------
# pg_dumpall's output gets a "\!" line inside a multi-line statement, as a hostile old server
# could write it; the restore must refuse it before the target changes, and run nothing.
EVILBIN=$T/bin-evil
mkdir -p "$EVILBIN"
for f in "$HARNESS_PGBIN"/*; do ln -sf "$f" "$EVILBIN/"; done
rm -f "$EVILBIN/pg_dumpall"
cat >"$EVILBIN/pg_dumpall" <<EOS
#!/bin/bash
set -o pipefail
real=$HARNESS_PGBIN/pg_dumpall
case "\${1:-}" in --version|-V) exec "\$real" "\$@" ;; esac
"\$real" "\$@" | sed '0,/^ALTER ROLE mastodon WITH/s| NOREPLICATION|\n\\\\! touch $T/pwned-by-snapshot\nNOREPLICATION|'
EOS
chmod 755 "$EVILBIN/pg_dumpall"
REPO3=$T/repo3
run init3 "$PF" --repo "$REPO3" init
run backup-evil env PERMAFROST_PG_BINDIR="$EVILBIN" "$PF" --repo "$REPO3" backup --live "$OLD/live"
rc_is 0 "a backup whose globals.sql carries a psql command"
"$PF" --repo "$REPO3" dump latest postgres/globals.sql 2>/dev/null | grep -q '^\\! touch' &&
    ok "the snapshot's globals.sql holds the \\! line" || fail "the hostile line is not in the snapshot"
wipe "$NEW"
REPO=$REPO3 run restore-evil restore_to "$NEW" latest
rc_is 4 "restore of a globals.sql with a psql command: refused (exit 4)"
has "the refusal names the meta-command and its line" "psql meta-command \\! refused"
has "the refusal says the database was not touched" "the database was not touched"
[ -e "$T/pwned-by-snapshot" ] && fail "a command from the snapshot ran on the restoring host" ||
    ok "nothing from the snapshot's globals.sql ran on the restoring host"
[ -z "$(pg_psql "$NEW" -d postgres -Atc "SELECT 1 FROM pg_roles WHERE rolname = 'mastodon' UNION ALL SELECT 1 FROM pg_database WHERE datname = 'mastodon_production'")" ] &&
    ok "the refused restore created no role and no database" || fail "the refused restore changed PostgreSQL"

# ---- PostgreSQL down -------------------------------------------------------------------------------------
n_before=$(nsnap)
pg_stop "$OLD"
run backup-pgdown pf backup --live "$OLD/live"
rc_is "7 5" "PostgreSQL down: cannot connect"
has "PostgreSQL down: names postgres" "postgres"
has "PostgreSQL down: names the address" "127.0.0.1:$OLD_PGPORT"
hasnt "PostgreSQL down: the component is named once" "postgres: postgres:"
[ "$(nsnap)" = "$n_before" ] && ok "PostgreSQL down: no snapshot" || fail "PostgreSQL down: snapshots $n_before -> $(nsnap)"
run check-pgdown pf check
rc_is 0 "check passes after the failed backup"
wipe "$NEW"
run restore-after-down restore_to "$NEW" "$S2"
rc_is 0 "an earlier snapshot still restores"
mastodon_digest "$NEW" >"$T/d.new"
same "earlier snapshot restores exactly" "$T/d1" "$T/d.new"
run check-final pf check --read-data
rc_is 0 "check --read-data of the whole repository"

# ---- no secret in any output ----------------------------------------------------------------------------
leaks=0
for s in "$SECRET_KEY_BASE" "$OTP_SECRET" "$SMTP_PASSWORD" "$MASTODON_DB_PASS" "${SECRET_KEY_BASE:0:32}"; do
    if grep -rqF -- "$s" "$L"; then
        fail "a secret (${s:0:6}...) appears in the output of: $(grep -rlF -- "$s" "$L" | xargs -n1 basename | tr '\n' ' ')"
        leaks=1
    fi
done
[ $leaks = 0 ] && ok "no secret value in the $(ls "$L" | wc -l) captured outputs (backup, restore, snapshots, ls, dump, check, errors)"

if [ $FAILED = 0 ]; then
    echo "all mastodon CLI tests passed"
else
    echo "$FAILED mastodon CLI test(s) failed"
    exit 1
fi

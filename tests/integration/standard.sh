#!/usr/bin/env bash
# A server laid out the way Mastodon's install guide leaves it (tests/harness/mastodon.sh
# standard_up: peer authentication only, `CREATE USER mastodon CREATEDB;`, no DB_PASS,
# live/ owned by the OS user mastodon), backed up and restored as root with no flags
# beyond --live (and the test's private socket directory, where the real one is
# /var/run/postgresql):
#   the database dumped as the OS user mastodon, the roles as postgres (with passwords);
#   restore onto a fresh machine of the same shape: roles and database made as postgres,
#   pg_restore as mastodon; every table, row, owner, Redis key, media file and owner,
#   and the secrets file (0600, mastodon's) exactly as on the source;
#   .env.production rewritten for the new socket and Redis port, every other byte kept;
#   the media go where the target says, never where the snapshot says (issue 10, 4);
#   no secret in any child's argv or environment but PGPASSWORD of libpq clients, in any
#   file left behind, or in any output (issue 10, 5);
#   "What is left to do" for both orders (code installed before or after the restore);
#   --live with and without DIR, --help of every form, exit codes by cause, mistyped URLs.
set -uo pipefail

SRC=${PF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PF=${PERMAFROST:-$SRC/permafrost}
. "$SRC/tests/harness/mastodon.sh"

[ "$(id -u)" = 0 ] || { echo "standard.sh needs root (it runs permafrost as root, as the README's unit does)"; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/pf-standard.XXXXXX")
chmod 755 "$T"
harness_on_exit "rm -rf '$T'"
L=$T/log
mkdir -p "$L"
export PERMAFROST_PASSWORD=standard-test-passphrase-9f3a
export PERMAFROST_CACHE_DIR=$T/cache
# Not used by a local repository: present to prove that no child inherits it.
export AWS_SECRET_ACCESS_KEY=aws-secret-never-in-a-child-51c7
export AWS_ACCESS_KEY_ID=AKIASTANDARDTEST
REPO=$T/repo
. "$SRC/tests/lib/counting.sh"
owner_is() { # DESCRIPTION PATH USER:GROUP [MODE]
    local got want="$3${4:+ $4}"
    got=$(stat -c "%U:%G${4:+ %a}" "$2" 2>&1)
    if [ "$got" = "$want" ]; then ok "$1"; else fail "$1: $2 is $got, wanted $want"; fi
}

# The PostgreSQL clients behind a shim that records each one's uid, environment and argv
# (from /proc, as another process would see them) before running the real binary.
SHIM=$T/shim
CHILDLOG=$T/children
mkdir -p "$SHIM" "$CHILDLOG"
chmod 755 "$SHIM"
chmod 1777 "$CHILDLOG"
for tool in pg_dump pg_dumpall pg_restore psql; do
    cat >"$SHIM/$tool" <<EOS
#!/bin/sh
f=$CHILDLOG/$tool.\$\$
{ echo "uid \$(id -un)"; echo "-- environ"; tr '\\0' '\\n' </proc/\$\$/environ; echo; echo "-- argv"; tr '\\0' '\\n' </proc/\$\$/cmdline; } >"\$f"
exec $HARNESS_PGBIN/$tool "\$@"
EOS
    chmod 755 "$SHIM/$tool"
done
export PERMAFROST_PG_BINDIR=$SHIM

pf() { "$PF" --repo "$REPO" "$@"; }

# ---- servers --------------------------------------------------------------------------------
standard_up "$T/old" >"$T/start.log" 2>&1 || { cat "$T/start.log"; die "cannot start the standard source server"; }
standard_blank "$T/new" >"$T/start.log" 2>&1 || { cat "$T/start.log"; die "cannot start the blank standard target"; }
OLD=$T/old NEW=$T/new
NEW_REDIS=$(. "$NEW/redis.env" && echo "$REDIS_PORT")
OLD_REDIS=$(. "$OLD/redis.env" && echo "$REDIS_PORT")
SECRET_KEY_BASE=$(sed -n 's/^SECRET_KEY_BASE=//p' "$OLD/live/.env.production")
[ ${#SECRET_KEY_BASE} -ge 64 ] || die "the harness wrote no SECRET_KEY_BASE"
owner_is "harness: live/ belongs to mastodon" "$OLD/live" mastodon:mastodon
# Root is nobody's role here: what a naive client as root meets.
if env -i PATH=/usr/bin:/bin "$HARNESS_PGBIN/psql" -X -h "$OLD/pgrun" -U mastodon -d mastodon_production -c 'SELECT 1' >/dev/null 2>&1; then
    fail "harness: root must not get in as mastodon (peer authentication)"
else ok "harness: peer authentication refuses root as mastodon"; fi

run init "$PF" --repo "$REPO" init
rc_is 0 "init"

# ---- backup as root, no flags ---------------------------------------------------------------
run backup pf backup --live "$OLD/live"
rc_is 0 "backup --live as root on a standard install"
SNAP1=$("$PF" --repo "$REPO" --json snapshots | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
has "the database is dumped as the superuser, over the socket as the OS user postgres" "probing mastodon_production as the OS user postgres"
hasnt "no fallback to the app's user when postgres gets in" "cannot connect as the superuser"
run dumpglobals pf dump latest postgres/globals.sql
has "globals.sql creates mastodon" 'CREATE ROLE mastodon;'
has "globals.sql keeps role passwords (dumped by a superuser)" "SCRAM-SHA-256"
grep -l '^-- argv' "$CHILDLOG"/pg_dump.* >/dev/null 2>&1 || fail "the shim recorded no pg_dump"
dumpers=$(for f in "$CHILDLOG"/pg_dump.* "$CHILDLOG"/pg_dumpall.*; do
    grep -q -- '--version' "$f" && continue
    echo "$(basename "$f" | cut -d. -f1) $(sed -n 's/^uid //p' "$f")"
done | sort -u | tr '\n' ' ')
if [ "$dumpers" = "pg_dump postgres pg_dumpall postgres " ]; then
    ok "pg_dump and pg_dumpall ran as postgres ($dumpers)"
else
    fail "who ran the dump clients: $dumpers"
fi

# A pg_hba.conf that keeps postgres out of Mastodon's database: the dump falls back to the
# app's own user (what Mastodon itself can read), the roles without their passwords.
hba=$OLD/pg/pg_hba.conf
cp "$hba" "$T/hba.saved"
printf 'local mastodon_production postgres reject\n' | cat - "$T/hba.saved" >"$hba"
harness_as_owner "$HARNESS_PGBIN/pg_ctl" -D "$OLD/pg" reload >/dev/null
rm -f "$CHILDLOG"/*
run fallback pf backup --live "$OLD/live" --only db
rc_is 0 "backup when postgres may not enter the database"
has "says it falls back to the app's user" "dumping as the OS user mastodon"
has "probes as the OS user mastodon" "probing mastodon_production as the OS user mastodon"
# (latest for postgres/ is the newest whole-server snapshot: name the partial one by id)
part_id=$(pf --json snapshots | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
run fallbackglobals pf dump "$part_id" postgres/globals.sql
hasnt "roles dumped without passwords then" "SCRAM-SHA-256"
fb=$(for f in "$CHILDLOG"/pg_dump.*; do grep -q -- '--version' "$f" || sed -n 's/^uid //p' "$f"; done | sort -u | tr '\n' ' ')
[ "$fb" = "mastodon " ] && ok "that pg_dump ran as mastodon" || fail "that pg_dump ran as: $fb"
cp "$T/hba.saved" "$hba"
harness_as_owner "$HARNESS_PGBIN/pg_ctl" -D "$OLD/pg" reload >/dev/null
pg_peer_psql "$OLD" postgres -d mastodon_production -c 'SELECT 1' >/dev/null 2>&1 || die "pg_hba.conf not restored"

# ---- restore onto a fresh machine of the same shape ---------------------------------------
[ ! -e "$NEW/live" ] || die "the blank target has a live/"
mkdir -p "$NEW/home"
chown mastodon: "$NEW/home"
# The fresh machine: /home/mastodon exists (owned by mastodon), live/ does not yet.
TARGET=$NEW/home/live
run restore pf restore "$SNAP1" --live "$TARGET" --pg-host "$NEW/pgrun" --redis-port "$NEW_REDIS"
rc_is 0 "restore --live as root onto a fresh standard machine"
has "pg_restore runs as the owner, not the superuser" "pg_restore as mastodon (OS user mastodon)"
has "says it wrote the new socket into .env.production" "DB_HOST set to $NEW/pgrun"
has "says it wrote the new Redis port into .env.production" "REDIS_PORT set to $NEW_REDIS"
restorers=$(for f in "$CHILDLOG"/pg_restore.*; do
    grep -q -- '--version\|--list\|--use-list.*ext' "$f" && continue
    grep -q -- '--dbname' "$f" && sed -n 's/^uid //p' "$f"
done | sort -u | tr '\n' ' ')
[ "$restorers" = "mastodon " ] && ok "the restoring pg_restore ran as mastodon" ||
    fail "the restoring pg_restore ran as: $restorers"
mv "$NEW/home/live" "$NEW/live" # where mastodon_digest looks
sed -i "s|^LIVE=.*|LIVE=$NEW/live|" "$NEW/mastodon.env"
mastodon_digest "$OLD" >"$T/d.old"
mastodon_digest "$NEW" >"$T/d.new"
grep -q '^table statuses rows=500' "$T/d.old" || fail "the digest of the source lacks the statuses table"
same "restored standard server has the source's digest (tables, owners, roles, Redis, secrets, media with owners)" "$T/d.old" "$T/d.new"
owner_is ".env.production belongs to mastodon, 0600" "$NEW/live/.env.production" mastodon:mastodon 600
owner_is "live/ (created by the restore) belongs to mastodon" "$NEW/live" mastodon:mastodon
owner_is "public/system belongs to mastodon" "$NEW/live/public/system" mastodon:mastodon
owner_is "public/ (created by the restore) belongs to mastodon" "$NEW/live/public" mastodon:mastodon
grep -q "^DB_HOST=$NEW/pgrun\$" "$NEW/live/.env.production" && ok ".env.production names the new socket" ||
    fail ".env.production does not name the new socket"
grep -q "^REDIS_PORT=$NEW_REDIS\$" "$NEW/live/.env.production" && ok ".env.production names the new Redis port" ||
    fail ".env.production does not name the new Redis port"
same "every other byte of .env.production is the snapshot's" \
    <(grep -v '^DB_HOST=\|^REDIS_PORT=' "$OLD/live/.env.production") \
    <(grep -v '^DB_HOST=\|^REDIS_PORT=' "$NEW/live/.env.production")
n=$(pg_peer_psql "$NEW" mastodon -At -d mastodon_production -c 'SELECT count(*) FROM statuses' 2>&1)
[ "$n" = 500 ] && ok "the app's way in works on the new machine (peer, as mastodon)" || fail "mastodon cannot read its database: $n"
has "steps: clone the code in place (live/ is not empty any more)" "git init -q && git remote add origin" "$OUT"
hasnt "steps: no plain git clone into live/" "git clone" "$OUT"

# With no connection flag at all, the admin connects where DB_HOST says (here the source's
# own socket directory, its database dropped first): the restore needs only --live.
pg_peer_psql "$OLD" postgres -d postgres -c "DROP DATABASE mastodon_production WITH (FORCE)" \
    -c "DROP ROLE mastodon" -c "DROP ROLE mastodon_readonly" >/dev/null || die "cannot drop the source's database"
run noflags pf restore "$SNAP1" --live "$T/again/live" --only db
rc_is 0 "restore --live with no connection flags (admin over DB_HOST's socket, peer)"
mastodon_digest "$OLD" >"$T/d.again"
same "that restore gives back the database exactly" <(sed -n '/^# database$/,/^# redis$/p' "$T/d.old") \
    <(sed -n '/^# database$/,/^# redis$/p' "$T/d.again")

# ---- the dump's SQL runs as the owner, not as a superuser ---------------------------------
# A table owned by postgres: restoring its ownership needs more than the owner may do. The
# restore stops there (proof it is not a superuser's) with a hint, and goes through only
# when the operator says the dump is trusted.
pg_peer_psql "$OLD" postgres -d mastodon_production -c "CREATE TABLE admin_owned (x int)" \
    -c "INSERT INTO admin_owned VALUES (42)" >/dev/null || die "cannot create admin_owned"
run backup2 pf backup --live "$OLD/live" --only db
rc_is 0 "backup of a database holding a table owned by postgres"
run asowner pf restore latest --live "$NEW/live" --only db --force --pg-host "$NEW/pgrun"
rc_is 5 "pg_restore as the owner cannot give a table to postgres"
has "the failure says the restore ran as the owner and how to trust the dump" "--pg-restore-as-admin"
run asadmin pf restore latest --live "$NEW/live" --only db --force --pg-host "$NEW/pgrun" --pg-restore-as-admin
rc_is 0 "restore --pg-restore-as-admin of that dump"
has "pg_restore ran as postgres" "pg_restore as postgres (OS user postgres)"
got=$(pg_peer_psql "$NEW" postgres -At -d mastodon_production -c "SELECT pg_get_userbyid(relowner) || ' ' || (SELECT x FROM admin_owned) FROM pg_class WHERE relname = 'admin_owned'" 2>&1)
[ "$got" = "postgres 42" ] && ok "the table owned by postgres came back as it was" || fail "admin_owned on the target: $got"
pg_peer_psql "$OLD" postgres -d mastodon_production -c "DROP TABLE admin_owned" >/dev/null

# ---- what the children saw, what was left behind, what was printed (issue 10, 5) ------------
# Secrets of this test: the repository passphrase, the AWS secret, Mastodon's own keys.
secrets=("$PERMAFROST_PASSWORD" "$AWS_SECRET_ACCESS_KEY" "$SECRET_KEY_BASE")
nkids=$(ls "$CHILDLOG" | wc -l)
[ "$nkids" -ge 6 ] && ok "the shim saw $nkids client runs" || fail "the shim saw only $nkids client runs"
leak=0
for s in "${secrets[@]}" PERMAFROST_PASSWORD AWS_SECRET_ACCESS_KEY AWS_ACCESS_KEY_ID; do
    if grep -rlF -- "$s" "$CHILDLOG" >/dev/null; then
        fail "a client's environment or argv holds $(printf '%.12s' "$s")...: $(grep -rlF -- "$s" "$CHILDLOG" | head -3 | tr '\n' ' ')"
        leak=1
    fi
done
[ $leak = 0 ] && ok "no child's environment or argv holds the passphrase, the AWS keys or Mastodon's secrets"
# The environment of each child is the allow-list plus libpq's settings.
bad=$(for f in "$CHILDLOG"/*; do
    sed -n '/^-- environ/,/^-- argv/p' "$f" | sed '1d;$d' | sed '/^$/d' | cut -d= -f1
done | sort -u | grep -vxE 'PATH|LANG|LANGUAGE|LC_[A-Z]+|TZ|TMPDIR|HOME|USER|LOGNAME|PG[A-Z_]+' | tr '\n' ' ')
[ -z "$bad" ] && ok "children get only the allow-list and PG* settings" || fail "children got: $bad"
# left_behind SECRET...: every secret looked for in the outputs, the cache and the temporary
# directories (the .env.production files of the live/ directories hold them by design; the
# repository is encrypted).
left_behind() {
    local s found=0 where=("$L" "$T/cache")
    # The temporary directory of this run (spool files would be there), minus the servers'
    # own directories and this script's tree (which holds the live/ directories).
    local d
    for d in "${TMPDIR:-/tmp}"/* /var/tmp/permafrost-*; do
        [ -e "$d" ] && [ "$d" != "$T" ] && where+=("$d")
    done
    for s in "$@"; do
        if grep -rlF -D skip -- "$s" "${where[@]}" 2>/dev/null | grep -q .; then
            fail "secret $(printf '%.12s' "$s")... found in: $(grep -rlF -D skip -- "$s" "${where[@]}" 2>/dev/null | head -3 | tr '\n' ' ')"
            found=1
        fi
    done
    [ $found = 0 ] && ok "no secret in any output, the cache or the temporary directories"
}
left_behind "${secrets[@]}"
ls -d "${TMPDIR:-/var/tmp}"/permafrost-pg-* /var/tmp/permafrost-pg-* 2>/dev/null | grep -q . &&
    fail "a spool directory was left behind" || ok "no spool directory left behind"

# ---- the same with passwords: DB_PASS, a Redis password, an admin password ---------------
# PGPASSWORD may reach libpq clients (that is how they get it: never argv); nothing else
# may, and no other secret may reach any child at all.
export MASTODON_REDIS_PASS=redis-pass-in-env-production-77e1
mastodon_up "$T/pw" >"$T/start.log" 2>&1 || { cat "$T/start.log"; die "cannot start the source server with passwords"; }
mastodon_blank "$T/pw2" >"$T/start.log" 2>&1 || { cat "$T/start.log"; die "cannot start the blank server with passwords"; }
unset MASTODON_REDIS_PASS
rm -f "$CHILDLOG"/*
run pwbackup pf backup --live "$T/pw/live"
rc_is 0 "backup of a server with DB_PASS and a Redis password"
PW_ADMIN=$(. "$T/pw2/pg.env" && echo "$PG_SUPERPASS")
run pwrestore env PERMAFROST_PG_ADMIN_PASSWORD="$PW_ADMIN" "$PF" --repo "$REPO" restore latest \
    --live "$T/pw2/live" --pg-host 127.0.0.1 --pg-port "$(. "$T/pw2/pg.env" && echo "$PG_PORT")" \
    --redis-host 127.0.0.1 --redis-port "$(. "$T/pw2/redis.env" && echo "$REDIS_PORT")"
rc_is 0 "restore onto servers with passwords"
has "that restore ran pg_restore as the owner, with DB_PASS" "pg_restore as mastodon"
pw_secrets=("$PERMAFROST_PASSWORD" "$AWS_SECRET_ACCESS_KEY" "redis-pass-in-env-production-77e1")
db_secrets=("$MASTODON_DB_PASS" "$PW_ADMIN")
[ "$(ls "$CHILDLOG" | wc -l)" -ge 6 ] && ok "the shim saw the clients of that backup and restore" || fail "the shim saw no clients"
leak=0
for f in "$CHILDLOG"/*; do
    for s in "${pw_secrets[@]}"; do
        grep -qF -- "$s" "$f" && { fail "$(basename "$f") holds $(printf '%.12s' "$s")..."; leak=1; }
    done
    for s in "${db_secrets[@]}"; do
        # Only as PGPASSWORD in the environment, never in argv.
        if sed -n '/^-- argv/,$p' "$f" | grep -qF -- "$s"; then
            fail "$(basename "$f"): a DB password in argv"; leak=1
        fi
        if sed -n '/^-- environ/,/^-- argv/p' "$f" | grep -F -- "$s" | grep -qvxF "PGPASSWORD=$s"; then
            fail "$(basename "$f"): a DB password outside PGPASSWORD"; leak=1
        fi
    done
done
[ $leak = 0 ] && ok "no child holds the passphrase, the AWS secret or the Redis password; DB passwords only as PGPASSWORD"
grep -lF "PGPASSWORD=$MASTODON_DB_PASS" "$CHILDLOG"/* >/dev/null && ok "pg_dump/pg_restore got DB_PASS as PGPASSWORD" ||
    fail "no client got DB_PASS: the check above proves nothing"
left_behind "${pw_secrets[@]}" "${db_secrets[@]}"
mastodon_digest "$T/pw" >"$T/d.pw"
mastodon_digest "$T/pw2" >"$T/d.pw2"
same "the server with passwords restores exactly" "$T/d.pw" "$T/d.pw2"

# ---- media root comes from the target (issue 10, 4) ------------------------------------------
# A snapshot whose .env.production says PAPERCLIP_ROOT_PATH is somewhere outside live/.
ELSE=$T/elsewhere/system
mkdir -p "$ELSE/media_attachments"
echo payload >"$ELSE/media_attachments/x.bin"
cp -a "$OLD/live" "$T/f4src"
echo "PAPERCLIP_ROOT_PATH=$ELSE" >>"$T/f4src/.env.production"
run f4backup pf backup --live "$T/f4src" --only secrets,media
rc_is 0 "backup of a server whose media live outside live/"
mv "$T/elsewhere" "$T/elsewhere.moved" # the new machine has no such directory
mkdir -p "$T/f4/live"
run f4restore pf restore latest --live "$T/f4/live" --only secrets,media
rc_is 0 "restore of that snapshot into another DIR"
[ ! -e "$ELSE" ] && ok "nothing written at the snapshot's PAPERCLIP_ROOT_PATH" || fail "the restore wrote $ELSE, outside DIR"
[ -f "$T/f4/live/public/system/media_attachments/x.bin" ] && ok "media restored into DIR/public/system" ||
    fail "media not in DIR/public/system"
grep -q "^PAPERCLIP_ROOT_PATH=$T/f4/live/public/system\$" "$T/f4/live/.env.production" &&
    ok "restored .env.production points PAPERCLIP_ROOT_PATH at where the media are" ||
    fail "PAPERCLIP_ROOT_PATH not rewritten: $(grep PAPERCLIP "$T/f4/live/.env.production")"
# A target whose own .env.production says the media live outside DIR: refused unless named.
mkdir -p "$T/f4b/live"
printf 'LOCAL_DOMAIN=x.example\nPAPERCLIP_ROOT_PATH=%s\n' "$T/f4b/outside" >"$T/f4b/live/.env.production"
run f4refuse pf restore latest --live "$T/f4b/live" --only media
rc_is 2 "media root outside DIR (from the target's .env.production) is refused"
has "the refusal names --media-root" "--media-root $T/f4b/outside"
[ ! -e "$T/f4b/outside" ] && ok "the refusal wrote nothing" || fail "the refusal wrote $T/f4b/outside"
run f4named pf restore latest --live "$T/f4b/live" --only media --media-root "$T/f4b/outside"
rc_is 0 "media root outside DIR named with --media-root"
[ -f "$T/f4b/outside/media_attachments/x.bin" ] && ok "media restored where --media-root says" || fail "media not in --media-root"
# A directory inside DIR swapped for a link to elsewhere (by whoever owns public/).
mkdir -p "$T/f4c/live/public" "$T/f4c/target"
ln -s "$T/f4c/target" "$T/f4c/live/public/system"
run f4link pf restore latest --live "$T/f4c/live" --only media
rc_is 2 "a media directory that is a symlink is refused"
has "the refusal names the link" "$T/f4c/live/public/system is a symbolic link"
[ -z "$(ls -A "$T/f4c/target")" ] && ok "nothing written through the link" || fail "the restore wrote through the link"
run f4rel pf restore latest --live "$T/f4b/live" --only media --media-root relative/dir
rc_is 2 "--media-root must be absolute"

# ---- steps when the code is already there ----------------------------------------------------
mkdir -p "$T/code/live/lib/mastodon" "$T/code/live/app"
touch "$T/code/live/Gemfile"
printf '  def major\n    4\n  end\n  def minor\n    2\n  end\n  def patch\n    9\n  end\n' >"$T/code/live/lib/mastodon/version.rb"
run steps pf restore latest --live "$T/code/live" --only secrets
rc_is 0 "restore into a live/ that holds Mastodon's code"
hasnt "steps: no code installation when the code is there" "install Mastodon's code" "$OUT"
has "steps: start the services" "systemctl start mastodon-web" "$OUT"

# ---- --live and --help (issue 8, part 4) -----------------------------------------------------
for c in $("$PF" --help | sed -n '/^commands:/,/^$/p' | awk 'NR > 1 && NF {print $1}'); do
    run help "$PF" "$c" --help
    if [ $RC = 0 ] && [ -s "$OUT" ] && [ ! -s "$ERR" ]; then ok "$c --help: stdout, exit 0"; else
        fail "$c --help: exit $RC, stdout $(wc -c <"$OUT") bytes, stderr $(head -c 200 "$ERR")"
    fi
done
for form in "backup --help" "backup --live --help" "restore --help" "restore --live --help" "restore latest --live --help"; do
    run help $PF $form
    if [ $RC = 0 ] && [ -s "$OUT" ] && [ ! -s "$ERR" ]; then ok "$form: stdout, exit 0"; else
        fail "$form: exit $RC, stdout $(wc -c <"$OUT") bytes, stderr $(head -c 200 "$ERR")"
    fi
done
run help pf backup --help
has "backup --help points to a help that works" "backup --live --help"
printf '[permafrost]\n' >"$T/empty.conf"
run livedefault "$PF" --config "$T/empty.conf" --repo "$REPO" backup --live
rc_is 13 "backup --live alone takes the default DIR"
has "backup --live alone reads /home/mastodon/live" "/home/mastodon/live/.env.production"
hasnt "no 'requires an argument'" "requires an argument"
has "the missing .env.production says what DIR must be" "Mastodon's live/ directory"
run livesep pf backup --live "$T/nonexistent-live"
has "--live DIR (separate word) keeps working" "$T/nonexistent-live/.env.production"
run liveeq pf backup --live="$T/nonexistent-live2"
has "--live=DIR works" "$T/nonexistent-live2/.env.production"
run restlive pf restore latest --live "$T/nonexistent-live3" --only secrets
rc_is 0 "restore SNAPSHOT --live DIR (separate word)"
[ -f "$T/nonexistent-live3/.env.production" ] && ok "restore took the separate word as DIR" || fail "restore did not write into DIR"

# ---- exit codes by cause ---------------------------------------------------------------------
# PostgreSQL unreachable: 7; no such database: 13; no .env.production: 13 (above). A
# refused DB_PASS (12, naming .env.production) is in mastodon.sh, which has passwords.
cp -a "$OLD/live" "$T/down"
sed -i "s|^DB_HOST=.*|DB_HOST=$T/no-socket-here|" "$T/down/.env.production"
run down pf backup --live "$T/down" --only db
rc_is 7 "PostgreSQL unreachable: exit 7"
cp -a "$OLD/live" "$T/nodb"
sed -i 's|^DB_NAME=.*|DB_NAME=no_such_db|' "$T/nodb/.env.production"
run nodb pf backup --live "$T/nodb" --only db
rc_is 13 "database missing: exit 13"

# ---- the shipped weekly check unit (contrib/systemd; units.sh checks every day) -------------
# Its ExecStart, as systemd passes it to sh (%% -> %, $$ -> $), run on a date in ISO week 08
# and 09, which `date +%V` prints as "08"/"09": bad octal numbers in $(( )).
line=$(grep -m1 'ExecStart=.*read-data-subset' "$SRC/contrib/systemd/permafrost-check.service" |
    sed "s/^ExecStart=\/bin\/sh -c '//; s/'\$//; s/%%/%/g; s/\\$\\$/\\$/g")
for day in 2026-02-19:1 2026-02-26:2 2026-03-05:3; do
    got=$(sh -c "date() { command date -d ${day%%:*} \"\$@\"; }; ${line/\/usr\/local\/bin\/permafrost -q check --read-data-subset=/echo }" 2>&1)
    [ "$got" = "${day##*:}/4" ] && ok "weekly check unit on ${day%%:*} reads slice $got" ||
        fail "weekly check unit on ${day%%:*}: \"$got\" (wanted ${day##*:}/4)"
done

# ---- the man page covers what the binary offers ------------------------------------------
# Rendered here (font macros joined as roff joins them), so that no man/groff is needed.
man_text=$(python3 - "$SRC/docs/permafrost.1" <<'EOP'
import re, shlex, sys
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.rstrip("\n")
    m = re.match(r"^\.(B|I|BR|BI|IR|RB|IB|RI)\s+(.*)$", line)
    if m:
        args = shlex.split(m.group(2).replace("\\", "\\\\"))
        line = (" " if len(m.group(1)) == 1 else "").join(args)
    elif line.startswith("."):
        continue
    line = re.sub(r"\\f[BIRP]", "", line).replace("\\-", "-").replace("\\(em", "-")
    print(line)
EOP
)
[ -n "$man_text" ] || fail "docs/permafrost.1 rendered to nothing"
for cmd in $("$PF" --help | sed -n '/^commands:/,/^$/p' | awk 'NR > 1 && NF {print $1}'); do
    grep -qE "^$cmd( |,|$)" <<<"$man_text" && ok "man page describes $cmd" || fail "man page lacks the command $cmd"
done
for word in "copy --to URL" PERMAFROST_TO_PASSWORD_FILE PERMAFROST_TO_PASSWORD "version, --version" \
    "--repo, -r URL" "--media-root" "--live [DIR]"; do
    grep -qF -- "$word" <<<"$man_text" && ok "man page names $word" || fail "man page lacks $word"
done
run version "$PF" --version
rc_is 0 "--version exits 0"
has "--version prints the version the man page names" "$(sed -n 's/^\.TH [^"]*"[^"]*" "\([^"]*\)".*/\1/p' "$SRC/docs/permafrost.1" | awk '{print $2}')"

# ---- mistyped repository URLs ----------------------------------------------------------------
cd "$T" || die "cd"
for url in "sftp:/backup@host/x" "sftp:backup@host/x" "s3:/bucket" "s3:bucket/x" "file:/x"; do
    run badurl "$PF" --repo "$url" init
    rc_is 2 "--repo $url is refused"
    has "--repo $url: suggests the right form" "://"
    [ ! -e "$T/${url%%:*}:" ] && ok "--repo $url created no local directory" || fail "--repo $url created $T/${url%%:*}:"
done

if [ $FAILED -gt 0 ]; then
    echo "$FAILED standard-install test(s) failed"
    exit 1
fi
echo "all standard-install tests passed"

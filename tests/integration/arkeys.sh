#!/usr/bin/env bash
# Mastodon-aware safety (issue 16), end to end through the CLI against real servers:
#   the ACTIVE_RECORD_ENCRYPTION_* keys: a database with encrypted users.otp_secret backed up
#   with keys that fit (manifest and check say so), with keys missing and with keys that do
#   not fit (exit 3, one loud line, check says so), with keys in a systemd EnvironmentFile=
#   and Environment= (found, backed up, said so); a restore refused over other keys, naming
#   them and not their values; no key or decrypted value in any output;
#   pgbouncer (Debian's, real) in front of PostgreSQL: backup and restore through it in
#   transaction and in statement pooling mode;
#   ES_ENABLED: the endpoint in the manifest (not its password), tootctl search deploy in
#   what is left to do.
set -uo pipefail

SRC=${PF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PF=${PERMAFROST:-$SRC/permafrost}
. "$SRC/tests/harness/mastodon.sh"
. "$SRC/tests/harness/pgbouncer.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/pf-arkeys.XXXXXX")
chmod 755 "$T"
harness_on_exit "rm -rf '$T'"
L=$T/log
mkdir -p "$L"
export PERMAFROST_PASSWORD=arkeys-test-passphrase
export PERMAFROST_CACHE_DIR=$T/cache
REPO=$T/repo
. "$SRC/tests/lib/counting.sh"
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }

# Every run reads a config of its own: no unit directory of this machine, no pgbouncer.ini
# of this machine.
mkdir -p "$T/nounits"
conf() { # FILE [KEY=VALUE...]: a permafrost.conf; a KEY given replaces the default
    local f=$1 kv
    shift
    local -A c=([systemd_unit_path]="$T/nounits" [pgbouncer_ini]="$T/no-pgbouncer.ini")
    for kv in "$@"; do c[${kv%%=*}]=${kv#*=}; done
    : >"$f"
    for kv in "${!c[@]}"; do echo "$kv = ${c[$kv]}" >>"$f"; done
}
conf "$T/plain.conf"
pf() { "$PF" --config "${CONF:-$T/plain.conf}" --repo "$REPO" "$@"; }
restore_to() { # TARGET [--via-port PORT] ARGS...: restore onto TARGET's servers
    local dir=$1 port
    shift
    port=$(. "$dir/pg.env" && echo "$PG_PORT")
    if [ "${1:-}" = --via-port ]; then
        port=$2
        shift 2
    fi
    (
        . "$dir/pg.env"
        . "$dir/redis.env"
        PERMAFROST_PG_ADMIN_PASSWORD=$PG_SUPERPASS "$PF" --config "${CONF:-$T/plain.conf}" --repo "$REPO" \
            restore "$@" --live "$dir/live" --pg-host 127.0.0.1 --pg-port "$port" \
            --pg-admin-user "$PG_SUPERUSER" --redis-host 127.0.0.1 --redis-port "$REDIS_PORT"
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
variant() { # NAME SED-EXPR: a copy of the source live/ whose .env.production went through SED-EXPR
    rm -rf "$T/$1"
    cp -a "$OLD/live" "$T/$1"
    sed -i "$2" "$T/$1/.env.production"
    echo "$T/$1"
}
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
up_encrypted() { mastodon_up "$1" && mastodon_encrypted "$1"; }
started3 OLD up_encrypted "$T/old" || die "cannot start the source server"
started3 NEW mastodon_blank "$T/new" || die "cannot start the blank target servers"
mastodon_digest "$OLD" >"$T/d0"

run init pf init
rc_is 0 "init"

# ---- keys that fit -------------------------------------------------------------------------------
run backup-fit pf --json backup --live "$OLD/live"
rc_is 0 "backup with keys that fit"
[ "$(jget "$OUT" 'd["manifest"]["encryption"]["keys"]')" = decrypt ] &&
    [ "$(jget "$OUT" 'd["manifest"]["encryption"]["values"]')" = users.otp_secret ] &&
    ok "manifest: the keys decrypt users.otp_secret" || fail "manifest encryption: $(jget "$OUT" 'd["manifest"].get("encryption")')"
run snaps-fit pf snapshots
has "snapshots shows the verdict" "keys=decrypt"
run check-fit pf check
rc_is 0 "check"
has "check: the keys decrypt the database" "they decrypt the database's encrypted values (users.otp_secret)"
run ls-fit pf ls latest
has "the snapshot holds the keys file" "/secrets/active_record_encryption.env"

# The SHA-1 fallback alone: the SHA-256 value gone, the SHA-1 one still there.
pg_psql "$OLD" -d mastodon_production -c "UPDATE users SET otp_secret = NULL WHERE otp_secret LIKE '{\"p\":\"hqwF%'" >/dev/null
run backup-sha1 pf --json backup --live "$OLD/live" --only db,secrets --tag sha1
rc_is 0 "backup whose only encrypted value needs the SHA-1 derived key"
[ "$(jget "$OUT" 'd["manifest"]["encryption"]["keys"]')" = decrypt ] && ok "the SHA-1 fallback key decrypts" ||
    fail "SHA-1 fallback: $(jget "$OUT" 'd["manifest"].get("encryption")')"
pg_psql "$OLD" -d mastodon_production -v a="$MASTODON_AR_OTP_SHA256" >/dev/null <<'EOS'
UPDATE users SET otp_secret = :'a' WHERE id = (SELECT min(id) FROM users);
EOS

# Mastodon 4.6's keypairs.private_key, then a column no one told us about (the sampled scan).
pg_psql "$OLD" -d mastodon_production -v a="$MASTODON_AR_OTP_SHA256" >/dev/null <<'EOS'
CREATE TABLE keypairs (id bigserial PRIMARY KEY, private_key text);
INSERT INTO keypairs (private_key) VALUES (:'a');
ALTER TABLE keypairs OWNER TO mastodon;
CREATE TABLE zz_custom (id int, note text, secret varchar);
INSERT INTO zz_custom VALUES (1, 'plain', NULL), (2, 'x', :'a');
ALTER TABLE zz_custom OWNER TO mastodon;
UPDATE users SET otp_secret = NULL WHERE otp_secret LIKE '{%';
EOS
run backup-keypairs pf --json backup --live "$OLD/live" --only db,secrets --tag keypairs
rc_is 0 "backup with encrypted keypairs.private_key only"
[ "$(jget "$OUT" 'd["manifest"]["encryption"]["values"]')" = keypairs.private_key ] && ok "found in keypairs.private_key" ||
    fail "keypairs: $(jget "$OUT" 'd["manifest"].get("encryption")')"
pg_psql "$OLD" -d mastodon_production -c "DROP TABLE keypairs" >/dev/null
run backup-sampled pf --json backup --live "$OLD/live" --only db,secrets --tag sampled
rc_is 0 "backup with an encrypted value in a column of no known table"
[ "$(jget "$OUT" 'd["manifest"]["encryption"]["values"]')" = zz_custom.secret ] &&
    [ "$(jget "$OUT" 'd["manifest"]["encryption"]["keys"]')" = decrypt ] && ok "the sampled scan found zz_custom.secret" ||
    fail "sampled scan: $(jget "$OUT" 'd["manifest"].get("encryption")')"
pg_psql "$OLD" -d mastodon_production -c "DROP TABLE zz_custom" >/dev/null
run backup-none pf --json backup --live "$OLD/live" --only db,secrets --tag none
rc_is 0 "backup of a database without encrypted values"
[ "$(jget "$OUT" 'd["manifest"]["encryption"]["keys"]')" = "not needed" ] && ok "manifest: keys not needed" ||
    fail "no encrypted values: $(jget "$OUT" 'd["manifest"].get("encryption")')"
pg_psql "$OLD" -d mastodon_production -v a="$MASTODON_AR_OTP_SHA256" -v b="$MASTODON_AR_OTP_SHA1" >/dev/null <<'EOS'
UPDATE users SET otp_secret = :'a' WHERE id = (SELECT min(id) FROM users);
UPDATE users SET otp_secret = :'b' WHERE id = (SELECT max(id) FROM users);
EOS
mastodon_digest "$OLD" >"$T/d.back"
same "the source server is as it was" "$T/d0" "$T/d.back"

# ---- keys missing --------------------------------------------------------------------------------
V=$(variant nokey '/^ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=/d')
run backup-missing pf --json backup --live "$V" --tag missing
rc_is 3 "backup without ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY is incomplete (exit 3)"
has "the loud line names the missing key" "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY is not set" "$ERR"
has "the loud line says what to do" "put the running server's values into .env.production" "$ERR"
[ "$(grep -c 'ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY is not set' "$ERR")" = 1 ] && ok "one loud line" ||
    fail "the loud line is printed $(grep -c 'ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY is not set' "$ERR") times"
[ "$(jget "$OUT" 'd["manifest"]["encryption"]["keys"]')" = missing ] && ok "manifest: keys missing" ||
    fail "manifest encryption: $(jget "$OUT" 'd["manifest"].get("encryption")')"
run check-missing pf check
has "check reports the missing keys" "encryption keys: MISSING"

# ---- keys that do not fit ------------------------------------------------------------------------
V=$(variant wrongsalt "s/^ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=.*/ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=notTheSaltThatWasUsedForThis123/")
run backup-nofit pf --json backup --live "$V" --tag nofit
rc_is 3 "backup with keys that do not decrypt is incomplete (exit 3)"
has "the loud line says the keys do not decrypt" "do not decrypt the database's encrypted values (users.otp_secret)" "$ERR"
has "the loud line names where the keys came from" "$V/.env.production" "$ERR"
[ "$(jget "$OUT" 'd["manifest"]["encryption"]["keys"]')" = "do not decrypt" ] && ok "manifest: keys do not decrypt" ||
    fail "manifest encryption: $(jget "$OUT" 'd["manifest"].get("encryption")')"
run check-nofit pf check
has "check reports keys that do not decrypt" "they do NOT decrypt"

# ---- keys in systemd units -----------------------------------------------------------------------
V=$(variant systemd '/^ACTIVE_RECORD_ENCRYPTION_/d')
U=$T/units
mkdir -p "$U/mastodon-web.service.d" "$T/etc-mastodon"
cat >"$T/etc-mastodon/ar.env" <<EOE
# the keys, kept out of .env.production
ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=$MASTODON_AR_PRIMARY
ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT="$MASTODON_AR_SALT"
EOE
chmod 600 "$T/etc-mastodon/ar.env"
cat >"$U/mastodon-web.service" <<EOU
[Unit]
Description=mastodon-web
[Service]
Type=simple
User=mastodon
WorkingDirectory=$V
Environment="RAILS_ENV=production" "PORT=3000"
EnvironmentFile=-/nonexistent/mastodon.env
EnvironmentFile=$T/etc-mastodon/ar.env
ExecStart=/usr/bin/bundle exec puma -C config/puma.rb
EOU
printf '[Service]\nEnvironment=ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY=%s\n' "$MASTODON_AR_DETERMINISTIC" \
    >"$U/mastodon-web.service.d/keys.conf"
conf "$T/units.conf" "systemd_unit_path=$U:$T/nounits"
CONF=$T/units.conf run backup-systemd pf --json backup --live "$V" --tag systemd
rc_is 0 "backup with the keys in mastodon-web.service's EnvironmentFile= and a drop-in"
has "the summary names the environment file" "$T/etc-mastodon/ar.env"
has "the summary names the drop-in" "$U/mastodon-web.service.d/keys.conf"
[ "$(jget "$OUT" 'd["manifest"]["encryption"]["keys"]')" = decrypt ] && ok "manifest: systemd keys decrypt" ||
    fail "manifest encryption: $(jget "$OUT" 'd["manifest"].get("encryption")')"
[ "$(jget "$OUT" 'd["manifest"]["encryption"]["sources"]["ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY"]')" = "$U/mastodon-web.service.d/keys.conf" ] &&
    ok "manifest: where each key came from" || fail "sources: $(jget "$OUT" 'd["manifest"]["encryption"].get("sources")')"
run ls-systemd pf ls latest
has "the environment file is in the snapshot" "/secrets/systemd$T/etc-mastodon/ar.env"
has "the drop-in is in the snapshot" "/secrets/systemd$U/mastodon-web.service.d/keys.conf"
"$PF" --config "$T/plain.conf" --repo "$REPO" dump latest "secrets/systemd$T/etc-mastodon/ar.env" >"$T/ar.dumped" 2>/dev/null
cmp -s "$T/ar.dumped" "$T/etc-mastodon/ar.env" && ok "the environment file is backed up byte-exact" ||
    fail "the backed-up environment file differs"

# ---- restore refused over other keys -------------------------------------------------------------
wipe "$NEW"
run restore-fit restore_to "$NEW" latest
rc_is 0 "restore of the systemd-keys snapshot"
has "what is left to do names the systemd files" "$T/etc-mastodon/ar.env"
wipe "$NEW"
# The "re-ran mastodon:setup" trap: a .env.production with keys of its own, then the database.
sed -e "s/^ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=.*/ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=freshlyGeneratedPrimaryKey0000/" \
    -e "s/^ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=.*/ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=freshlyGeneratedSalt00000000/" \
    "$OLD/live/.env.production" >"$NEW/live/.env.production"
mastodon_digest "$NEW" >"$T/d.before"
run restore-otherkeys restore_to "$NEW" latest --only db
rc_is 6 "restore --only db over a .env.production with other keys refuses (exit 6)"
has "the refusal names the keys that differ" "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY, ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT"
has "the refusal says --force" "--force"
hasnt "the refusal shows no key" "freshlyGenerated"
hasnt "the refusal shows no key of the snapshot" "$MASTODON_AR_PRIMARY"
mastodon_digest "$NEW" >"$T/d.after"
same "the refused restore changed nothing" "$T/d.before" "$T/d.after"
run restore-otherkeys-force restore_to "$NEW" latest --only db --force
rc_is 0 "restore --only db --force over other keys"
# Same keys: no refusal on their account.
wipe "$NEW"
cp "$OLD/live/.env.production" "$NEW/live/.env.production"
run restore-samekeys restore_to "$NEW" latest --only db
rc_is 0 "restore --only db over a .env.production with the same keys"

# ---- search --------------------------------------------------------------------------------------
V=$(variant search 's/^ES_ENABLED=false/ES_ENABLED=true\nES_HOST=es.internal\nES_PORT=9201\nES_USER=elastic\nES_PASS=es-password-never-shown/')
run backup-search pf --json backup --live "$V" --tag search
rc_is 0 "backup with ES_ENABLED=true"
[ "$(jget "$OUT" 'd["manifest"]["search"]["host"]'):$(jget "$OUT" 'd["manifest"]["search"]["port"]')" = es.internal:9201 ] &&
    ok "manifest: the search endpoint" || fail "manifest search: $(jget "$OUT" 'd["manifest"].get("search")')"
hasnt "the manifest holds no ES_PASS" "es-password-never-shown"
S_SEARCH=$(jget "$OUT" 'd["id"]')
wipe "$NEW"
run restore-search restore_to "$NEW" "$S_SEARCH"
rc_is 0 "restore of the search snapshot"
has "what is left to do: tootctl search deploy" "tootctl search deploy"
has "the step names the old endpoint" "es.internal:9201"

# ---- pgbouncer -----------------------------------------------------------------------------------
OLD_PG=$(. "$OLD/pg.env" && echo "$PG_PORT")
for mode in transaction statement; do
    pgbouncer_stop "$OLD"
    pgbouncer_stop "$NEW"
    pgbouncer_start "$OLD" "$mode" >"$T/pgb.log" 2>&1 || die "cannot start pgbouncer ($mode): $(cat "$T/pgb.log")"
    OLD_PGB=$(. "$OLD/pgbouncer.env" && echo "$PGB_PORT")
    pgbouncer_start "$NEW" "$mode" >"$T/pgb.log" 2>&1 || die "cannot start pgbouncer ($mode): $(cat "$T/pgb.log")"
    NEW_PGB=$(. "$NEW/pgbouncer.env" && echo "$PGB_PORT")
    V=$(variant "pgb-$mode" "s/^DB_PORT=.*/DB_PORT=$OLD_PGB/")
    if [ "$mode" = statement ]; then
        # Without pgbouncer's configuration nor pg_host/pg_port: a clear refusal, no snapshot.
        before=$("$PF" --config "$T/plain.conf" --repo "$REPO" --json snapshots | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
        run backup-pgb-noini pf --json backup --live "$V" --tag pgb-noini
        rc_is 2 "a statement-mode pgbouncer with no way to PostgreSQL itself refuses the backup (exit 2)"
        has "the refusal says statement pooling" "statement pooling mode"
        has "the refusal names the settings" "pg_host and pg_port"
        after=$("$PF" --config "$T/plain.conf" --repo "$REPO" --json snapshots | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
        [ "$before" = "$after" ] && ok "no snapshot written" || fail "snapshots: $before before, $after after"
    fi
    conf "$T/pgb-old.conf" "pgbouncer_ini=$OLD/pgbouncer/pgbouncer.ini"
    CONF=$T/pgb-old.conf run "backup-pgb-$mode" pf --json backup --live "$V" --tag "pgb-$mode"
    rc_is 0 "backup through pgbouncer in $mode mode"
    if [ "$mode" = statement ]; then
        has "the statement-mode backup says it bypassed pgbouncer" "127.0.0.1:$OLD_PG"
    fi
    [ "$(jget "$OUT" 'd["manifest"]["encryption"]["keys"]')" = decrypt ] && ok "the keys check ran through pgbouncer ($mode)" ||
        fail "encryption through pgbouncer: $(jget "$OUT" 'd["manifest"].get("encryption")')"
    SP=$(jget "$OUT" 'd["id"]')
    wipe "$NEW"
    # The target's PostgreSQL is reached through its pgbouncer: without its ini, a clear refusal.
    run "restore-pgb-noini-$mode" restore_to "$NEW" --via-port "$NEW_PGB" "$SP"
    rc_is "1 2 5 7" "restore onto a pgbouncer whose configuration cannot be read refuses ($mode)"
    has "the refusal names pgbouncer and what to set" "pgbouncer"
    has "the refusal names the settings" "--pg-port"
    conf "$T/pgb-new.conf" "pgbouncer_ini=$NEW/pgbouncer/pgbouncer.ini"
    CONF=$T/pgb-new.conf run "restore-pgb-$mode" restore_to "$NEW" --via-port "$NEW_PGB" "$SP"
    rc_is 0 "restore through a target's pgbouncer in $mode mode goes to PostgreSQL itself"
    has "the restore says where PostgreSQL itself is" "pgbouncer"
    mastodon_digest "$OLD" | grep -v '^secrets ' >"$T/d.old"
    mastodon_digest "$NEW" | grep -v '^secrets ' >"$T/d.new"
    same "restored through pgbouncer ($mode): same database, Redis and media" "$T/d.old" "$T/d.new"
done

# ---- drill: the restored database decrypts with the snapshot's keys -----------------------------
# Its scratch servers need a short path (unix socket names are bounded).
D=$(mktemp -d /tmp/pf-ark.XXXXXX)
harness_on_exit "rm -rf '$D'"
chmod 755 "$D"
run drill pf drill --tmp "$D"
rc_is 0 "drill of the latest snapshot"
has "the drill proves the keys on the restored database" "the snapshot's keys decrypt the restored users.otp_secret"

# ---- no secret anywhere --------------------------------------------------------------------------
for s in "$MASTODON_AR_PRIMARY" "$MASTODON_AR_DETERMINISTIC" "$MASTODON_AR_SALT" JBSWY3DPEHPK3PXP "sha1 secret" \
    es-password-never-shown; do
    if grep -rqF -- "$s" "$L"; then fail "a key or decrypted value in the output: $(grep -rlF -- "$s" "$L" | head -3)"; else ok "no \"${s:0:6}...\" in any output"; fi
done

echo
[ "$FAILED" = 0 ] && echo "arkeys: all passed" || echo "arkeys: $FAILED failed"
[ "$FAILED" = 0 ]

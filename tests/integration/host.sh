#!/usr/bin/env bash
# The host component end to end: backup --live keeps a fake machine's /etc/letsencrypt
# (a 0600 key), the nginx site that names LOCAL_DOMAIN (not the other one) and its
# sites-enabled link, a mastodon-*.service unit with its drop-in and the mastodon crontab,
# read below host_root; ls shows host/; a whole restore leaves a changed host file alone
# and says how to restore them; restore --only host prints its plan, refuses a different
# file without --force and restores modes, owners and links; a machine with none of these
# files gives a complete snapshot whose host component says "nothing to keep"; host = no
# and host_exclude leave them out; a forged host/etc/passwd is refused (exit 4).
. "${PF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}/tests/lib/testlib.sh" host
. "$SRC/tests/harness/mastodon.sh"

export PERMAFROST_PASSWORD=host-test-passphrase PERMAFROST_CACHE_DIR=$W/cache
REPO=$W/repo
H=$W/hostroot
pf() { "$PF" --repo "$REPO" "$@"; }
# conf LINES...: the config file the next commands read.
conf() { printf '%s\n' "$@" >"$W/pf.conf"; }
export PERMAFROST_CONFIG=$W/pf.conf
# both: stdout and stderr of the last run, in one file.
both() { cat "$W/out.txt" "$W/err.txt" >"$W/both.txt"; }
# jget EXPR: a value out of the last run's JSON (EXPR indexes d).
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$W/out.txt"; }

# servers (a port found free can be taken before the server binds it: retry elsewhere);
# started in this shell, which stops them when it exits.
start() {
    local var=$1 fn=$2 base=$3 n
    for n in 1 2 3; do
        if "$fn" "$base.$n" >"$W/start.log" 2>&1; then
            printf -v "$var" '%s' "$base.$n"
            return 0
        fi
    done
    cat "$W/start.log" >&2
    return 1
}
start OLD mastodon_up "$W/old" || fail "cannot start the source server"
start NEW mastodon_blank "$W/new" || fail "cannot start the blank target servers"

say "a fake machine"
mkdir -p "$H/etc/letsencrypt/archive/harness.example" "$H/etc/letsencrypt/live/harness.example" \
    "$H/etc/letsencrypt/renewal" "$H/etc/nginx/sites-available" "$H/etc/nginx/sites-enabled" \
    "$H/etc/systemd/system/mastodon-web.service.d" "$H/var/spool/cron/crontabs"
chmod 700 "$H/etc/letsencrypt/archive" "$H/etc/letsencrypt/live"
# As Debian's cron package makes it: the sticky, group-writable spool crontab(1) needs.
chgrp 4243 "$H/var/spool/cron/crontabs"
chmod 1730 "$H/var/spool/cron/crontabs"
echo "-----BEGIN PRIVATE KEY----- host-test-key-material" >"$H/etc/letsencrypt/archive/harness.example/privkey1.pem"
chmod 600 "$H/etc/letsencrypt/archive/harness.example/privkey1.pem"
echo "-----BEGIN CERTIFICATE-----" >"$H/etc/letsencrypt/archive/harness.example/fullchain1.pem"
ln -s ../../archive/harness.example/privkey1.pem "$H/etc/letsencrypt/live/harness.example/privkey.pem"
echo "archive_dir = /etc/letsencrypt/archive/harness.example" >"$H/etc/letsencrypt/renewal/harness.example.conf"
cat >"$H/etc/nginx/sites-available/mastodon" <<'EOF'
server {
  listen 443 ssl http2;
  server_name harness.example;
  ssl_certificate /etc/letsencrypt/live/harness.example/fullchain.pem;
}
EOF
cat >"$H/etc/nginx/sites-available/other" <<'EOF'
# not harness.example's: a neighbour on the same machine
server { server_name files.harness.example other.example; }
EOF
ln -s /etc/nginx/sites-available/mastodon "$H/etc/nginx/sites-enabled/mastodon"
ln -s ../sites-available/other "$H/etc/nginx/sites-enabled/other"
printf '[Service]\nExecStart=/bin/true\n' >"$H/etc/systemd/system/mastodon-web.service"
printf '[Service]\nEnvironment=WEB_CONCURRENCY=4\n' >"$H/etc/systemd/system/mastodon-web.service.d/override.conf"
printf '[Service]\nExecStart=/usr/sbin/nginx\n' >"$H/etc/systemd/system/nginx.service"
echo "0 3 * * * RAILS_ENV=production bin/tootctl media remove" >"$H/var/spool/cron/crontabs/mastodon"
chown 4242:4242 "$H/var/spool/cron/crontabs/mastodon"
chmod 600 "$H/var/spool/cron/crontabs/mastodon"
cp -a "$H" "$W/hostroot.orig"
conf "host_root = $H"

say "backup --live records them"
run 0 pf init
run 0 pf backup --live "$OLD/live"
both
has "$W/both.txt" "host: $H/etc/letsencrypt"
run 0 pf --json snapshots
S1=$(jget 'd[-1]["id"]')
[ "$(jget 'd[-1]["components"]["host"]["status"]')" = ok ] || fail "host status: $(jget 'd[-1]["components"]')"
[ "$(jget 'd[-1]["components"]["host"]["count"]')" = 6 ] || fail "host count: $(jget 'd[-1]["components"]["host"]')"
[ "$(jget 'd[-1]["complete"]')" = True ] || fail "snapshot not complete"
[ "$(jget 'd[-1]["components"]["host"]["paths"]')" = "['/etc/letsencrypt', '/etc/nginx/sites-available/mastodon', '/etc/nginx/sites-enabled/mastodon', '/etc/systemd/system/mastodon-web.service', '/etc/systemd/system/mastodon-web.service.d', '/var/spool/cron/crontabs/mastodon']" ] ||
    fail "host paths: $(jget 'd[-1]["components"]["host"]["paths"]')"
[ "$(jget 'd[-1]["components"]["host"]["bytes"]')" -gt 0 ] || fail "host bytes not recorded"
lacks "$W/out.txt" "host-test-key-material"
ok "components record paths, count and bytes, not contents"

run 0 pf ls latest
has "$W/out.txt" " /host/etc/nginx/sites-available/mastodon"
has "$W/out.txt" " /host/etc/nginx/sites-enabled/mastodon"
has "$W/out.txt" " /host/etc/systemd/system/mastodon-web.service.d/override.conf"
has "$W/out.txt" " /host/var/spool/cron/crontabs/mastodon"
lacks "$W/out.txt" "sites-available/other"
lacks "$W/out.txt" "sites-enabled/other"
lacks "$W/out.txt" "nginx.service"
grep -E ' /host/etc/letsencrypt/archive/harness.example/privkey1.pem$' "$W/out.txt" | grep -q '^-rw-------' ||
    fail "ls: the key is not 0600: $(grep privkey1 "$W/out.txt")"
ok "ls shows host/ with the site naming LOCAL_DOMAIN only, the key 0600"
run 0 pf dump latest host/var/spool/cron/crontabs/mastodon
cmp -s "$W/out.txt" "$H/var/spool/cron/crontabs/mastodon" || fail "dump latest host/...: $(cat "$W/out.txt")"
ok "latest of a host/ path is the newest whole-server snapshot"
run 0 pf --json stats latest
[ "$(jget '"host" in d["components"]')" = True ] || fail "stats: no host part: $(cat "$W/out.txt")"
ok "stats counts host/ as a component"

say "a whole restore leaves the host files alone"
echo "# edited after the backup" >>"$H/etc/nginx/sites-available/mastodon"
(
    . "$NEW/pg.env"
    . "$NEW/redis.env"
    PERMAFROST_PG_ADMIN_PASSWORD=$PG_SUPERPASS "$PF" --repo "$REPO" restore latest \
        --live "$NEW/live" --pg-host 127.0.0.1 --pg-port "$PG_PORT" --pg-admin-user "$PG_SUPERUSER" \
        --redis-host 127.0.0.1 --redis-port "$REDIS_PORT"
) >"$W/out.txt" 2>"$W/err.txt" || fail "whole restore failed: $(cat "$W/err.txt")"
both
grep -q "edited after the backup" "$H/etc/nginx/sites-available/mastodon" || fail "the whole restore rewrote the nginx site"
has "$W/both.txt" "permafrost restore ${S1:0:8} --live $NEW/live --only host"
has "$W/both.txt" "systemctl daemon-reload"
has "$W/both.txt" "certbot renew --dry-run"
has "$W/both.txt" "systemctl reload nginx"
lacks "$W/both.txt" "host: would write"
ok "whole restore: host files untouched, What is left to do names the command"

say "restore --only host: the plan, and --force over a different file"
run 6 pf restore latest --live "$NEW/live" --only host
both
has "$W/both.txt" "would write $H/etc/nginx/sites-available/mastodon (exists, differs)"
has "$W/both.txt" "would write $H/var/spool/cron/crontabs/mastodon (exists, same)"
has "$W/both.txt" "would write $H/etc/letsencrypt/archive/harness.example/privkey1.pem (exists, same)"
has "$W/both.txt" "--force"
grep -q "edited after the backup" "$H/etc/nginx/sites-available/mastodon" || fail "a refused restore changed the site"
ok "refused (exit 6) over a different file, after listing every path"

rm -rf "$H/etc/letsencrypt" "$H/var/spool/cron/crontabs/mastodon" "$H/etc/nginx/sites-enabled/mastodon" \
    "$H/etc/systemd/system/mastodon-web.service.d"
run 0 pf restore latest --live "$NEW/live" --only host --force
both
has "$W/both.txt" "would write $H/etc/letsencrypt/archive/harness.example/privkey1.pem (new)"
has "$W/both.txt" "would write $H/etc/nginx/sites-available/mastodon (exists, differs)"
has "$W/both.txt" "the machine's files are back under $H"
has "$W/both.txt" "systemctl daemon-reload"
lacks "$W/both.txt" "tootctl feeds build"
diff -r --no-dereference "$W/hostroot.orig" "$H" >"$W/diff.txt" || fail "restored host files differ: $(cat "$W/diff.txt")"
for f in etc/letsencrypt/archive/harness.example/privkey1.pem var/spool/cron/crontabs/mastodon \
    etc/letsencrypt/archive etc/letsencrypt/live etc/letsencrypt/live/harness.example/privkey.pem \
    etc/nginx/sites-enabled/mastodon etc/systemd/system/mastodon-web.service.d; do
    [ "$(stat -c '%A %u:%g' "$W/hostroot.orig/$f")" = "$(stat -c '%A %u:%g' "$H/$f")" ] ||
        fail "$f: $(stat -c '%A %u:%g' "$H/$f"), was $(stat -c '%A %u:%g' "$W/hostroot.orig/$f")"
done
[ "$(readlink "$H/etc/nginx/sites-enabled/mastodon")" = /etc/nginx/sites-available/mastodon ] ||
    fail "sites-enabled link: $(readlink "$H/etc/nginx/sites-enabled/mastodon")"
[ "$(stat -c '%a %u' "$H/var/spool/cron/crontabs/mastodon")" = "600 4242" ] || fail "crontab mode/owner"
ok "--force: contents, modes, owners and links as backed up"

rm "$H/var/spool/cron/crontabs/mastodon"
run 0 pf restore latest --live "$NEW/live" --only host
both
has "$W/both.txt" "would write $H/var/spool/cron/crontabs/mastodon (new)"
cmp -s "$W/hostroot.orig/var/spool/cron/crontabs/mastodon" "$H/var/spool/cron/crontabs/mastodon" ||
    fail "crontab not restored"
ok "only new files: no --force needed"

# A machine without cron's spool yet: the directories on the way are made as they were,
# not 0700 (crontab(1) could not write a 0700 root-owned crontabs directory).
rm -rf "$H/var/spool/cron"
run 0 pf restore latest --live "$NEW/live" --only host
[ "$(stat -c '%a %g' "$H/var/spool/cron/crontabs")" = "1730 4243" ] ||
    fail "a crontabs directory made by the restore is $(stat -c '%a %g' "$H/var/spool/cron/crontabs"), was 1730 4243"
cmp -s "$W/hostroot.orig/var/spool/cron/crontabs/mastodon" "$H/var/spool/cron/crontabs/mastodon" ||
    fail "crontab not restored into a new spool"
ok "directories on the way that the restore makes get their recorded mode and owner"

mv "$H/etc/nginx/sites-enabled" "$W/sites-enabled.real"
ln -s "$W/sites-enabled.real" "$H/etc/nginx/sites-enabled"
run 6 pf restore latest --live "$NEW/live" --only host --force
has "$W/err.txt" "$H/etc/nginx/sites-enabled is a symbolic link here, not a directory: refusing"
[ -L "$H/etc/nginx/sites-enabled" ] || fail "the linked sites-enabled was replaced"
rm "$H/etc/nginx/sites-enabled"
mv "$W/sites-enabled.real" "$H/etc/nginx/sites-enabled"
ok "a directory on the way that is a link here is refused, even with --force"

say "excludes, host = no, and a machine with none of these files"
conf "host_root = $H" "host_exclude = /etc/letsencrypt /etc/systemd/*"
run 0 pf backup --live "$OLD/live"
run 0 pf --json snapshots
[ "$(jget 'd[-1]["components"]["host"]["paths"]')" = "['/etc/nginx/sites-available/mastodon', '/etc/nginx/sites-enabled/mastodon', '/var/spool/cron/crontabs/mastodon']" ] ||
    fail "host_exclude: $(jget 'd[-1]["components"]["host"]["paths"]')"
ok "host_exclude leaves out what its globs match"
run 0 pf diff "$S1" latest
cp "$W/out.txt" "$W/diff.out"
has "$W/diff.out" "host.count 6 -> 3 (-3)"
grep -E "^- .*host/etc/letsencrypt" "$W/diff.out" >/dev/null || fail "diff: letsencrypt not removed: $(cat "$W/diff.out")"
ok "diff: the host line and the paths left out"

conf "host_root = $H" "host = no"
run 0 pf backup --live "$OLD/live"
run 0 pf --json snapshots
[ "$(jget '"host" in d[-1]["components"]')" = False ] || fail "host = no still kept host files"
[ "$(jget 'd[-1]["complete"]')" = True ] || fail "host = no: snapshot not complete"
run 0 pf ls latest
lacks "$W/out.txt" "/host"
ok "host = no: no host/, the snapshot still whole"

mkdir -p "$W/bare/etc/nginx/sites-available"
conf "host_root = $W/bare"
run 0 pf backup --live "$OLD/live"
both
has "$W/both.txt" "host: nothing to keep under $W/bare"
run 0 pf --json snapshots
[ "$(jget 'd[-1]["components"]["host"]["status"]')" = ok ] &&
    [ "$(jget 'd[-1]["components"]["host"]["note"]')" = "nothing to keep" ] ||
    fail "bare host status: $(jget 'd[-1]["components"]["host"]')"
[ "$(jget 'd[-1]["components"]["host"]["count"]')" = 0 ] || fail "bare host count"
[ "$(jget 'd[-1]["complete"]')" = True ] || fail "bare host: snapshot not complete"
ok "a machine with none of the files: complete snapshot, \"nothing to keep\""

run 0 pf restore latest --live "$NEW/live" --only host
both
has "$W/both.txt" "nothing to write"
ok "restore --only host of it writes nothing"

say "a forged host/ is refused"
mkdir -p "$W/forge/host/etc" "$W/forgeroot/etc"
echo "root::0:0::/root:/bin/sh" >"$W/forge/host/etc/passwd"
run 0 pf backup "$W/forge/host"
run 0 pf --json snapshots
FORGED=$(jget 'd[-1]["id"]')
conf "host_root = $W/forgeroot"
run 4 pf restore "$FORGED" --live "$NEW/live" --only host
has "$W/err.txt" "host/etc/passwd is not a file the host component keeps"
[ ! -e "$W/forgeroot/etc/passwd" ] || fail "a forged host/etc/passwd was written"
ok "a snapshot naming a path the component never keeps restores nothing (exit 4)"

echo "host: all passed"

#!/usr/bin/env bash
# The shipped systemd units and example config (no servers, no running systemd; seconds):
#   verify   systemd-analyze verify accepts every unit of contrib/systemd (with the paths
#            pointed at this build), and the backup unit keeps the hardening it promises:
#            ProtectSystem=strict, no ProtectHome, the capabilities pg_dump-as-postgres needs;
#            the wal-stream service (it reconnects by itself) restarts after a crash only,
#            runs as postgres, hardened
#   week     the check unit's ExecStart, unescaped as systemd does, asks for part
#            (ISO week % 4) + 1 of 4 on every day of two years, weeks 08 and 09 included,
#            so four consecutive weeks read all four parts
#   notify   failure-notify (OnFailure= hook) logs the failed unit's last lines at
#            priority err, mails them when MAILTO is set, and fails when it cannot mail
#   install  make install DESTDIR=... PREFIX=/usr puts the binary, both man pages, the
#            example config, the hook and the units in place, the units naming /usr
set -eEuo pipefail
trap 'echo "FAIL: line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR

PF=${PERMAFROST:-$PWD/permafrost}
SRC=${PF_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
U=$SRC/contrib/systemd

W=$(mktemp -d "${TMPDIR:-/tmp}/pf-units.XXXXXX")
trap 'rm -rf "$W"' EXIT

say() { echo "== $*"; }
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
has() { # has FILE TEXT
    grep -qF -- "$2" "$1" || {
        echo "--- $1:" >&2
        cat "$1" >&2
        fail "$1 lacks: $2"
    }
}

units=(permafrost-backup.service permafrost-backup.timer permafrost-check.service
    permafrost-check.timer permafrost-drill.service permafrost-drill.timer permafrost-failure@.service
    permafrost-wal-stream.service)
for u in "${units[@]}"; do [ -f "$U/$u" ] || fail "contrib/systemd/$u is missing"; done

say verify
# systemd-analyze comes with Debian's systemd package (scripts/install-deps.sh) and needs
# no running systemd.
command -v systemd-analyze >/dev/null ||
    fail "systemd-analyze not found: install Debian's systemd package (scripts/install-deps.sh)"
mkdir -p "$W/units"
for u in "${units[@]}"; do
    sed "s|/usr/local/bin/permafrost|$PF|g; s|/usr/local/lib/permafrost/|$U/|g" "$U/$u" >"$W/units/$u"
done
# --man=no: the man pages are not installed here (install, below, checks they would be).
rc=0
(cd "$W/units" && SYSTEMD_UNIT_PATH="$W/units:" systemd-analyze verify --man=no "$W"/units/*) \
    >"$W/verify.txt" 2>&1 || rc=$?
if [ $rc != 0 ] || [ -s "$W/verify.txt" ]; then
    cat "$W/verify.txt" >&2
    fail "systemd-analyze verify: exit $rc"
fi
b=$U/permafrost-backup.service
has "$b" "ProtectSystem=strict"
has "$b" "NoNewPrivileges=yes"
has "$b" "PrivateTmp=yes"
has "$b" "OnFailure=permafrost-failure@%n.service"
has "$U/permafrost-check.service" "OnFailure=permafrost-failure@%n.service"
ws=$U/permafrost-wal-stream.service
has "$ws" "ExecStart=/usr/local/bin/permafrost wal-stream"
has "$ws" "Restart=on-abnormal"
has "$ws" "User=postgres"
has "$ws" "ProtectSystem=strict"
has "$ws" "NoNewPrivileges=yes"
! grep -q '^ProtectHome=' "$b" || fail "ProtectHome= in the backup unit: it must read /home/mastodon/live"
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$b")
for c in CAP_SETUID CAP_SETGID CAP_KILL CAP_DAC_READ_SEARCH CAP_FOWNER CAP_CHOWN; do
    case " $caps " in *" $c "*) ;; *) fail "the backup unit drops $c" ;; esac
done
# The hardening as systemd reads it, not only as written.
systemd-analyze security --offline=yes "$W/units/permafrost-backup.service" >"$W/sec.txt" 2>&1 ||
    true
has "$W/sec.txt" "Overall exposure level for permafrost-backup.service"
ok "systemd-analyze verify accepts every unit; the backup keeps its capabilities, no ProtectHome"

say week
cmd=$(sed -n "s/^ExecStart=\/bin\/sh -c '\(.*\)'$/\1/p" "$W/units/permafrost-check.service")
[ -n "$cmd" ] || fail "no ExecStart=/bin/sh -c '...' in permafrost-check.service"
# systemd's escapes: %% is %, $$ is $.
cmd=$(printf '%s' "$cmd" | sed 's/%%/%/g; s/\$\$/$/g')
mkdir -p "$W/bin"
cat >"$W/bin/date" <<'EOF'
#!/bin/sh
exec /bin/date -d "$FAKE_DAY" "$@"
EOF
cat >"$W/fakepf" <<'EOF'
#!/bin/sh
printf '%s\n' "$*"
EOF
chmod +x "$W/bin/date" "$W/fakepf"
cmd=${cmd//$PF/$W/fakepf}
day=$(/bin/date -d 2026-01-01 +%s)
end=$(/bin/date -d 2028-01-01 +%s)
n=0
while [ "$day" -lt "$end" ]; do
    d=$(/bin/date -d "@$day" +%F)
    got=$(FAKE_DAY=$d PATH="$W/bin:$PATH" sh -c "$cmd" 2>&1) || fail "$d: $got"
    week=$(/bin/date -d "$d" +%V)
    want="-q check --read-data-subset=$((10#$week % 4 + 1))/4"
    [ "$got" = "$want" ] || fail "$d (ISO week $week): the check ran \"$got\", expected \"$want\""
    n=$((n + 1))
    day=$((day + 86400))
done
ok "$n days: part (ISO week % 4) + 1 of 4, weeks 08 and 09 included"

say notify
mkdir -p "$W/nbin"
cat >"$W/nbin/journalctl" <<'EOF'
#!/bin/sh
echo "journalctl $*"
echo "permafrost: backup: postgres: pg_dump exited 1: connection refused"
EOF
cat >"$W/nbin/sendmail" <<EOF
#!/bin/sh
echo "sendmail \$*" >"$W/mail.txt"
cat >>"$W/mail.txt"
EOF
chmod +x "$W/nbin/journalctl" "$W/nbin/sendmail"
(unset MAILTO && PATH="$W/nbin:$PATH" "$U/failure-notify" permafrost-backup.service) >"$W/n1.txt"
has "$W/n1.txt" "<3>permafrost-backup.service failed on"
has "$W/n1.txt" "journalctl --unit=permafrost-backup.service --lines=40"
has "$W/n1.txt" "pg_dump exited 1: connection refused"
[ ! -e "$W/mail.txt" ] || fail "mailed without MAILTO"
MAILTO=admin@example.net SENDMAIL=$W/nbin/sendmail PATH="$W/nbin:$PATH" \
    "$U/failure-notify" permafrost-check.service >"$W/n2.txt"
has "$W/mail.txt" "sendmail -t"
has "$W/mail.txt" "To: admin@example.net"
has "$W/mail.txt" "permafrost-check.service failed"
has "$W/mail.txt" "pg_dump exited 1: connection refused"
rc=0
MAILTO=admin@example.net SENDMAIL=$W/none PATH="$W/nbin:$PATH" \
    "$U/failure-notify" permafrost-check.service >"$W/n3.txt" || rc=$?
[ $rc = 1 ] || fail "failure-notify exited $rc without a sendmail, expected 1"
has "$W/n3.txt" "cannot mail admin@example.net: no $W/none"
ok "the hook logs at priority err, mails with MAILTO, fails when it cannot mail"

say install
# -o permafrost: install what is built, never rebuild it here (with the runner's BUILD, say
# build-asan, make would copy that binary over the tree's ./permafrost).
[ -x "$SRC/permafrost" ] || fail "$SRC/permafrost is not built: run make first"
env -u BUILD make -s -C "$SRC" -o permafrost install DESTDIR="$W/inst" PREFIX=/usr >"$W/make.txt" 2>&1 || {
    cat "$W/make.txt" >&2
    fail "make install failed"
}
for f in bin/permafrost share/man/man1/permafrost.1 share/man/man5/permafrost.conf.5 \
    share/doc/permafrost/permafrost.conf lib/permafrost/failure-notify; do
    [ -f "$W/inst/usr/$f" ] || fail "make install did not install /usr/$f"
done
[ -x "$W/inst/usr/lib/permafrost/failure-notify" ] || fail "failure-notify is not executable"
for u in "${units[@]}"; do
    i=$W/inst/usr/lib/systemd/system/$u
    [ -f "$i" ] || fail "make install did not install $u"
    ! grep -q /usr/local "$i" || fail "installed $u still names /usr/local"
done
has "$W/inst/usr/lib/systemd/system/permafrost-backup.service" "ExecStart=/usr/bin/permafrost -q backup"
has "$W/inst/usr/lib/systemd/system/permafrost-failure@.service" \
    "ExecStart=/usr/lib/permafrost/failure-notify %i"
ok "make install: binary, man1, man5, example config, hook, units naming /usr"

echo "units: all passed"

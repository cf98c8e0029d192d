#!/usr/bin/env bash
# The whole server to a point in time: a Mastodon-shaped server whose PostgreSQL archives
# into the repository (archive_command = permafrost wal-push %p), backed up with
# postgres = both, restored onto fresh machines (a stopped, absent cluster):
#   backup    backup --live holds postgres/ (the dump) and postgres-physical/ (the base
#             backup, its end segment archived)
#   pitr      restore --live DIR --to a time between two known states of a table whose rows
#             record their commit times: exactly the earlier state; secrets, Redis and media
#             come back; one line says where recovery got to, one how stale the rest is
#   running   without --to the base backup is recovered too (to the end of the archive):
#             a running cluster in the target is refused before anything changes
#   latest    --to latest recovers every archived row; --json says the target, the time
#             reached, the base backup used and how much older secrets, Redis and media are
#   root      restore (and drill) as root with a passphrase file and repository only root can read: the
#             WAL is fetched ahead into a spool postgres owns, the target reached, the spool
#             removed after the promotion
#   logical   --to on a repository of logical dumps only is one clear line (exit 2)
#   drill     the drill also recovers a point in time (its time and RTO said); a WAL segment
#             deleted from the repository makes it fail, naming the segment, and check
#             names the gap for the whole-server snapshot's base backup
# Every permafrost runs as the cluster's OS user (postgres as root): the archive_command
# writes into the same repository. No archive_timeout: pg_switch_wal() (and the base backup's
# own switch) close the segments the test needs, so recovery fetches a handful.
. "$PF_SRC/tests/lib/testlib.sh" livepitr
. "$SRC/tests/harness/mastodon.sh"
# The harness's exit trap replaces testlib's: run testlib's last, so W and S go too.
harness_on_exit _testlib_cleanup
export TZ=UTC
chmod 755 "$W"
S=$(mktemp -d /tmp/pfl.XXXXXX) # the drill's scratch: unix socket paths are short
chmod 755 "$S"
harness_chown_pg "$S"
on_exit "rm -rf '$S'"

printf 'livepitr-test-passphrase\n' >"$W/pass"
cp "$PF" "$W/permafrost"
chmod 755 "$W/permafrost"
mkdir -m 700 "$W/repo" "$W/repo2" "$W/kc" "$W/cache" "$W/tmp"
cat >"$W/pf" <<EOF
#!/bin/sh
export PERMAFROST_PASSWORD_FILE=$W/pass PERMAFROST_REPO=\${REPO:-$W/repo} PERMAFROST_KEY_CACHE=$W/kc
export PERMAFROST_CONFIG=$W/pf.conf PERMAFROST_CACHE_DIR=$W/cache PERMAFROST_LOCK_WAIT=30 TZ=UTC
export TMPDIR=$W/tmp
unset PERMAFROST_PASSWORD
exec $W/permafrost "\$@"
EOF
chmod 755 "$W/pf"
: >"$W/pf.conf"
chmod 644 "$W/pf.conf"
harness_chown_pg "$W/pass" "$W/repo" "$W/repo2" "$W/kc" "$W/cache" "$W/tmp"
chmod 600 "$W/pass"
pf() { harness_as_owner "$W/pf" "$@"; }
prun() { # RC CMD...: run, as the cluster's OS user
    local want=$1
    shift
    run "$want" harness_as_owner "$W/pf" "$@"
}
pf -q init
REPO=$W/repo2 pf -q init

say backup
PG_CONF_EXTRA="wal_level = replica
archive_mode = on
archive_command = '$W/pf wal-push %p'
max_wal_senders = 4" mastodon_up "$W/old" || fail "cannot start the source server"
. "$W/old/mastodon.env"
OLD_SOCK=$PG_SOCK
harness_chown_pg "$W/old/live"
cat >"$W/pf.conf" <<EOF
postgres = both
pg_physical_conninfo = host=$OLD_SOCK port=$PG_PORT user=postgres
EOF
chmod 644 "$W/pf.conf"
q() { pg_psql "$W/old" -d mastodon_production -Atc "$1"; }
q "create table pitr_marks (id serial primary key, state text, at timestamptz default clock_timestamp())"
q "alter table pitr_marks owner to mastodon"
q "insert into pitr_marks (state) values ('A')"
prun 0 --json backup --live "$W/old/live"
python3 - "$W/out.txt" >"$W/end_wal" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["kind"] == "mastodon", d["kind"]
c = d["components"]
assert "postgres" in c and "postgres-physical" in c, sorted(c)
p = c["postgres-physical"]
assert p["status"] == "ok" and p["wal_archived"] is True, p
print(p["end_wal"])
PY
end_wal=$(cat "$W/end_wal")
backup_id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$W/out.txt")
ok "backup --live with postgres = both: the dump and the base backup (end segment $end_wal archived)"

say pitr
q "insert into pitr_marks (state) values ('B'), ('B')"
b_at=$(q "select extract(epoch from max(at))::numeric(20,6) from pitr_marks")
# The target: the first whole second after B's commits; C commits after it (the clock is
# what is waited for here, nothing else).
target_epoch=$(python3 -c "import math; print(math.floor($b_at) + 1)")
target=$(date -u -d "@$target_epoch" '+%Y-%m-%d %H:%M:%S')
past_target() { python3 -c "import sys; sys.exit(0 if $(q "select extract(epoch from clock_timestamp())") > $target_epoch + 0.05 else 1)"; }
wait_for 5 past_target
q "insert into pitr_marks (state) values ('C')"
seg_c=$(q "select pg_walfile_name(pg_switch_wal())")
# One more segment after C's (other WAL than pitr_marks'): C's is then inside the archive.
pg_psql "$W/old" -d postgres -c "create table wal_filler (x int)"
seg=$(q "select pg_walfile_name(pg_switch_wal())")
[[ "$seg" > "$seg_c" ]] || fail "no segment after $seg_c"
wait_for 60 test -f "$W/repo/wal/00000001/$seg_c"
wait_for 60 test -f "$W/repo/wal/00000001/$seg"
pg_stop "$W/old" # the machine is lost

fresh() { # DIR: a new machine: an empty Redis, no cluster, nothing in live/
    mkdir -p "$1"
    redis_start "$1" >/dev/null || return 1
    mkdir -p "$1/run"
    harness_chown_pg "$1"
    . "$1/redis.env"
    NEW_REDIS_PORT=$REDIS_PORT
    NEW_PG_PORT=$(harness_free_port)
    harness_on_exit "harness_as_owner '$HARNESS_PGBIN/pg_ctl' -D '$1/pg' -m immediate -w stop >/dev/null 2>&1"
}
restored_psql() { # DIR SQL
    local dir=$1 port
    port=$(cat "$dir/pg.port")
    harness_as_owner "$HARNESS_PGBIN/psql" -X -q -h "$dir/run" -p "$port" -U postgres \
        -d mastodon_production -Atc "$2"
}
restore_onto() { # DIR ARGS...: restore --live onto the fresh machine DIR
    local dir=$1
    shift
    printf '%s\n' "$NEW_PG_PORT" >"$dir/pg.port"
    prun 0 ${RESTORE_JSON:-} restore --live "$dir/live" "$@" --pg-physical-target "$dir/pg" \
        --pg-ctl-options "-p $NEW_PG_PORT -c listen_addresses= -c unix_socket_directories=$dir/run -c archive_mode=off" \
        --pg-port "$NEW_PG_PORT" --redis-host 127.0.0.1 --redis-port "$NEW_REDIS_PORT"
}
fresh "$W/new"
restore_onto "$W/new" --to "$target"
states=$(restored_psql "$W/new" "select string_agg(state, '' order by id) from pitr_marks")
[ "$states" = ABB ] || fail "PITR to $target gave '$states', wanted ABB: $(cat "$W/out.txt" "$W/err.txt")"
[ "$(restored_psql "$W/new" "select count(*) from accounts")" = 60 ] || fail "the accounts did not come back"
[ "$(restored_psql "$W/new" "select pg_is_in_recovery()")" = f ] || fail "the cluster did not promote"
has "$W/out.txt" "database recovered to $target"
has "$W/out.txt" "recovery stopping before commit"
grep -qE "^secrets, Redis and media are from snapshot [0-9a-f]{8} \(.*\): [0-9]+ s older than the database$" "$W/out.txt" ||
    fail "no staleness line: $(cat "$W/out.txt")"
diff -r "$W/old/live/public/system" "$W/new/live/public/system" >/dev/null || fail "the media differ"
grep -q "^SECRET_KEY_BASE=$(sed -n 's/^SECRET_KEY_BASE=//p' "$W/old/live/.env.production")$" "$W/new/live/.env.production" ||
    fail "the secrets did not come back"
[ "$(redis_cli "$W/new" GET stat:processed)" = 12345 ] || fail "Redis did not come back"
ok "--to $target: exactly A and B, accounts, media, secrets and Redis back; $(grep '^secrets, Redis' "$W/out.txt")"

say running
# Without --to a snapshot holding a base backup is still restored to a point in time (the
# end of the archive): onto the cluster restored above, running, that is refused before
# anything changes.
rc=0
harness_as_owner "$W/pf" restore latest --live "$W/new3/live" --pg-physical-target "$W/new/pg" \
    >"$W/out.txt" 2>"$W/err.txt" || rc=$?
[ "$rc" = 6 ] || fail "restore onto a running cluster: exit $rc, wanted 6: $(cat "$W/err.txt")"
has "$W/err.txt" "a PostgreSQL cluster is running in $W/new/pg"
[ ! -e "$W/new3" ] || fail "the refused restore wrote $W/new3"
ok "without --to the base backup is recovered; a running cluster is refused: $(tail -1 "$W/err.txt")"

say latest
fresh "$W/new2"
RESTORE_JSON=--json restore_onto "$W/new2" --to latest
states=$(restored_psql "$W/new2" "select string_agg(state, '' order by id) from pitr_marks")
[ "$states" = ABBC ] || fail "--to latest gave '$states', wanted ABBC: $(cat "$W/out.txt" "$W/err.txt")"
# --json says what the human lines say: the target, the time reached (at or after C's
# commit), the base backup used, and how much older the secrets, Redis and media are.
c_at=$(restored_psql "$W/new2" "select extract(epoch from max(at)) from pitr_marks")
python3 - "$W/out.txt" "$backup_id" "$c_at" "$W/new2/pg" <<'PY' || fail "the restore's JSON: $(cat "$W/out.txt")"
import json, sys
from datetime import datetime
d = json.load(open(sys.argv[1]))
backup_id, c_at, data_dir = sys.argv[2], float(sys.argv[3]), sys.argv[4]
p = d["pitr"]
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
assert p["target"] == "latest", p
assert p["reached_by"] == "recovery", p
assert t(p["reached"]) >= int(c_at), (p["reached"], c_at)
assert p["base_backup"]["snapshot"] == backup_id, (p["base_backup"], backup_id)
assert t(p["base_backup"]["ended"]) <= t(p["reached"]), p
assert d["snapshot"] == p["rest"]["snapshot"] == backup_id, (d["snapshot"], p["rest"])
stale = p["rest"]["older_than_database_seconds"]
assert abs(stale - (t(p["reached"]) - t(p["rest"]["time"]))) < 1.001, p
assert stale > 0 and p["data_dir"] == data_dir and p["wal_gaps"] == 0, p
print(f"reached {p['reached']}, rest {stale:.0f} s older")
PY
python3 "$PF_SRC/tests/lib/check_json.py" "$PF_SRC/docs/JSON.md" restore "$W/out.txt" >/dev/null ||
    fail "the restore's JSON does not match docs/JSON.md: $(python3 "$PF_SRC/tests/lib/check_json.py" "$PF_SRC/docs/JSON.md" restore "$W/out.txt" 2>&1)"
ok "--to latest recovers every archived row: $states; --json: $(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["pitr"]; print(p["target"], p["reached"], p["base_backup"]["snapshot"][:8], p["rest"]["older_than_database_seconds"])' "$W/out.txt")"

say root
# As on a real server: restore run by root, with a passphrase file, config and repository
# only root can read. PostgreSQL runs restore_command as postgres, so the restore fetches
# the WAL ahead into a spool postgres owns and restore_command copies from it.
if [ "$(id -u)" = 0 ]; then
    cp -a "$W/repo" "$W/rootrepo"
    mkdir -m 700 "$W/rootkc" "$W/rootcache"
    mkdir -m 1777 "$W/roottmp" # as /tmp is: the drill's pg_restore runs as the app's user
    cp "$W/pass" "$W/rootpass"
    cp "$W/pf.conf" "$W/rootpf.conf"
    chown -R root:root "$W/rootrepo" "$W/rootpass" "$W/rootpf.conf"
    chmod 700 "$W/rootrepo"
    chmod 600 "$W/rootpass" "$W/rootpf.conf"
    cat >"$W/pfroot" <<EOF
#!/bin/sh
export PERMAFROST_PASSWORD_FILE=$W/rootpass PERMAFROST_REPO=$W/rootrepo PERMAFROST_KEY_CACHE=$W/rootkc
export PERMAFROST_CONFIG=$W/rootpf.conf PERMAFROST_CACHE_DIR=$W/rootcache TZ=UTC TMPDIR=$W/roottmp
unset PERMAFROST_PASSWORD
exec $W/permafrost "\$@"
EOF
    chmod 700 "$W/pfroot"
    fresh "$W/new4"
    printf '%s\n' "$NEW_PG_PORT" >"$W/new4/pg.port"
    run 0 "$W/pfroot" restore --live "$W/new4/live" --to "$target" --pg-physical-target "$W/new4/pg" \
        --pg-ctl-options "-p $NEW_PG_PORT -c listen_addresses= -c unix_socket_directories=$W/new4/run -c archive_mode=off" \
        --pg-port "$NEW_PG_PORT" --redis-host 127.0.0.1 --redis-port "$NEW_REDIS_PORT"
    states=$(restored_psql "$W/new4" "select string_agg(state, '' order by id) from pitr_marks")
    [ "$states" = ABB ] || fail "PITR as root to $target gave '$states', wanted ABB: $(cat "$W/out.txt" "$W/err.txt")"
    has "$W/out.txt" "database recovered to $target"
    grep -qE "fetched [0-9]+ of the [0-9]+ WAL segments archived from the base backup on \([0-9.]+ MiB, at most [0-9]+ at once in $W/new4/pg.permafrost-wal\)" "$W/err.txt" ||
        fail "no line says what was fetched ahead: $(cat "$W/err.txt")"
    grep -qF "restore_command = 'd=''$W/new4/pg.permafrost-wal''; f=''%f''" "$W/new4/pg/postgresql.auto.conf" ||
        fail "restore_command is not the spool's: $(grep restore_command "$W/new4/pg/postgresql.auto.conf")"
    [ ! -e "$W/new4/pg.permafrost-wal" ] || fail "the WAL spool stayed after the promotion"
    ok "as root with a root-only passphrase and repository: $states; $(grep -o 'fetched.*at once' "$W/err.txt")"
    # The drill timer runs as root too: its point in time is recovered from a spool as well.
    run 0 "$W/pfroot" drill --tmp "$S"
    has "$W/out.txt" "ok   point in time"
    [ -z "$(ls -A "$S")" ] || fail "the root drill left $(ls -A "$S") behind"
    ok "a drill as root recovers its point in time: $(grep 'point in time' "$W/out.txt")"
else
    echo "note: the root case needs root (restore as root, recovery as postgres)"
fi

say logical
# A repository of logical dumps only: --to is refused in one line, before anything changes.
harness_as_owner "$HARNESS_PGBIN/pg_ctl" -D "$W/old/pg" -l "$W/old/pgrun/pg.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$OLD_SOCK -c archive_mode=off" \
    start >/dev/null
REPO=$W/repo2 prun 0 backup --live "$W/old/live" --postgres logical
rc=0
REPO=$W/repo2 harness_as_owner "$W/pf" restore --live "$W/none/live" --to "$target" >"$W/out.txt" 2>"$W/err.txt" || rc=$?
[ "$rc" = 2 ] || fail "--to on a logical-only repository: exit $rc, wanted 2: $(cat "$W/err.txt")"
has "$W/err.txt" "no whole-server snapshot in the repository holds a base backup"
[ "$(wc -l <"$W/err.txt")" = 1 ] || fail "more than one line: $(cat "$W/err.txt")"
[ ! -e "$W/none" ] || fail "the refused restore wrote $W/none"
ok "--to on logical dumps only: $(cat "$W/err.txt")"
pg_stop "$W/old"

say drill
prun 0 drill --tmp "$S"
has "$W/out.txt" "ok   point in time"
grep -qE "recovered to [0-9-]+ [0-9:]+ .* in [0-9.]+ s" "$W/out.txt" || fail "the drill does not say where PITR got to: $(cat "$W/out.txt")"
has "$W/out.txt" "verdict: the backup restores"
ok "the drill recovers a point in time: $(grep 'point in time' "$W/out.txt")"
gap=$seg_c # after the base backup's end, before the newest archived segment
[ -f "$W/repo/wal/00000001/$gap" ] || fail "no segment $gap to remove"
rm "$W/repo/wal/00000001/$gap"
# check counts the whole-server snapshot's base backup: it names the gap it cuts short.
rc=0
harness_as_owner "$W/pf" check >"$W/check.txt" 2>&1 || rc=$?
[ "$rc" = 4 ] || fail "check with a WAL gap: exit $rc, wanted 4: $(cat "$W/check.txt")"
grep -q "WAL gap on timeline 1: $gap missing; recovery stops at .* for base backup" "$W/check.txt" ||
    fail "check does not name the gap: $(cat "$W/check.txt")"
rc=0
harness_as_owner "$W/pf" drill --tmp "$S" >"$W/out.txt" 2>"$W/err.txt" || rc=$?
[ "$rc" != 0 ] || fail "a drill with a WAL segment missing passed: $(cat "$W/out.txt")"
grep -q "FAIL point in time.*$gap missing" "$W/out.txt" || fail "the drill does not name the missing segment: $(cat "$W/out.txt" "$W/err.txt")"
[ -z "$(ls -A "$S")" ] || fail "the failed drill left $(ls -A "$S") behind"
ok "a missing WAL segment fails the drill: $(grep 'point in time' "$W/out.txt")"
echo "all whole-server PITR tests passed"

# A throwaway PostgreSQL cluster on a loopback port. Source this file, then:
#   pg_start DIR [PORT]   initdb in DIR/pg and start it (as the `postgres` OS user when we
#                         are root). Sets PG_PORT, PG_SOCK (socket directory), PG_HOST,
#                         PG_SUPERUSER (postgres), PG_SUPERPASS, PG_BIN and writes the same
#                         as shell assignments to DIR/pg.env. Stopped when the shell exits.
#   pg_stop DIR           stop it now (fast shutdown)
#   pg_kill DIR           stop it abruptly (immediate shutdown)
#   pg_psql DIR ARGS...   psql as the superuser over TCP with the password
#   pg_start_archiving DIR CMD [PORT]   as pg_start, with wal_level=replica, archive_mode=on,
#                         archive_command=CMD (%p as PostgreSQL gives it), archive_timeout
#                         5 s and room for replication connections (base backups)
#   pg_start_standby DIR PRIMARY_DIR   a streaming standby of the cluster in PRIMARY_DIR
#                         (pg_basebackup -R over TCP, a free port); sets and writes what
#                         pg_start does. The primary needs wal_level=replica and wal senders
#                         (pg_start_archiving, or PG_CONF_EXTRA); PG_CTL_EXTRA (options for
#                         the server, e.g. "-c full_page_writes=on", which a backup taken on
#                         the standby needs) applies to pg_start and pg_start_standby
#   pg_start_peer DIR     a cluster shaped like Debian's default (peer authentication only,
#                         no TCP, no password); see below
#   pg_peer_psql DIR OSUSER ARGS...   psql over its socket as OSUSER (peer)
# Authentication: TCP needs a password (scram-sha-256) for everyone, the socket trusts
# local users (the socket directory is private to the test).
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PG_SUPERUSER=postgres
PG_SUPERPASS=harness-superuser-pw

pg_start() {
    local dir=$1 port=${2:-} pwfile
    [ -n "$port" ] || port=$(harness_free_port) || return 1
    mkdir -p "$dir/pg" "$dir/pgrun"
    chmod 711 "$dir"
    # The postgres OS user must reach DIR: open the parent for traversal (mktemp -d is 0700).
    chmod o+x "$(dirname "$dir")" 2>/dev/null || true
    pwfile=$dir/pgrun/pw
    printf '%s\n' "$PG_SUPERPASS" >"$pwfile"
    chmod 600 "$pwfile"
    harness_chown_pg "$dir/pg" "$dir/pgrun"
    harness_as_owner "$HARNESS_PGBIN/initdb" -D "$dir/pg" -U "$PG_SUPERUSER" --pwfile="$pwfile" \
        -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >"$dir/pgrun/initdb.log" 2>&1 ||
        { cat "$dir/pgrun/initdb.log" >&2; return 1; }
    rm -f "$pwfile"
    if [ -n "${PG_CONF_EXTRA:-}" ]; then
        # initdb's pg_hba.conf already lets replication connections in like any other.
        printf '%s\n' "$PG_CONF_EXTRA" >>"$dir/pg/postgresql.conf"
    fi
    # A port that looked free may be taken by the time the server binds it (other jobs on
    # the machine): try again on another one.
    local fixed=${2:-} attempt
    for attempt in 1 2 3 4 5; do
        if harness_as_owner "$HARNESS_PGBIN/pg_ctl" -D "$dir/pg" -l "$dir/pgrun/pg.log" -w -t 60 \
            -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir/pgrun -c fsync=off -c synchronous_commit=off -c full_page_writes=off ${PG_CTL_EXTRA:-}" \
            start >/dev/null; then
            break
        fi
        if [ -n "$fixed" ] || [ "$attempt" = 5 ] || ! grep -q "Address already in use" "$dir/pgrun/pg.log"; then
            cat "$dir/pgrun/pg.log" >&2
            return 1
        fi
        port=$(harness_free_port) || return 1
    done
    harness_on_exit "pg_kill '$dir'"
    PG_PORT=$port
    PG_SOCK=$dir/pgrun
    PG_HOST=127.0.0.1
    PG_BIN=$HARNESS_PGBIN
    cat >"$dir/pg.env" <<EOV
PG_PORT=$port
PG_SOCK=$dir/pgrun
PG_HOST=127.0.0.1
PG_SUPERUSER=$PG_SUPERUSER
PG_SUPERPASS=$PG_SUPERPASS
PG_BIN=$HARNESS_PGBIN
EOV
}

pg_start_archiving() {
    local dir=$1 cmd=$2 port=${3:-}
    PG_CONF_EXTRA="wal_level = replica
archive_mode = on
archive_command = '${cmd//\'/\'\'}'
archive_timeout = 5
max_wal_senders = 4" pg_start "$dir" $port
}

pg_start_standby() {
    local dir=$1 primary=$2 port
    port=$(harness_free_port) || return 1
    mkdir -p "$dir/pgrun" "$dir/pg"
    chmod 711 "$dir"
    chmod 700 "$dir/pg"
    harness_chown_pg "$dir/pgrun" "$dir/pg"
    (. "$primary/pg.env" && PGPASSWORD=$PG_SUPERPASS harness_as_owner env PGPASSWORD="$PG_SUPERPASS" \
        "$HARNESS_PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" -D "$dir/pg" -R \
        -X stream -c fast) >"$dir/pgrun/basebackup.log" 2>&1 || { cat "$dir/pgrun/basebackup.log" >&2; return 1; }
    # A standby does not archive (archive_mode = on archives only on a primary).
    harness_as_owner "$HARNESS_PGBIN/pg_ctl" -D "$dir/pg" -l "$dir/pgrun/pg.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir/pgrun -c fsync=off -c synchronous_commit=off ${PG_CTL_EXTRA:-}" \
        start >/dev/null || { cat "$dir/pgrun/pg.log" >&2; return 1; }
    harness_on_exit "pg_kill '$dir'"
    PG_PORT=$port
    PG_SOCK=$dir/pgrun
    PG_HOST=127.0.0.1
    PG_BIN=$HARNESS_PGBIN
    cat >"$dir/pg.env" <<EOV
PG_PORT=$port
PG_SOCK=$dir/pgrun
PG_HOST=127.0.0.1
PG_SUPERUSER=$PG_SUPERUSER
PG_SUPERPASS=$PG_SUPERPASS
PG_BIN=$HARNESS_PGBIN
EOV
}

pg_stop() {
    [ -f "$1/pg/postmaster.pid" ] || return 0
    harness_as_owner "$HARNESS_PGBIN/pg_ctl" -D "$1/pg" -m fast -w stop >/dev/null 2>&1 || true
}

pg_kill() {
    [ -f "$1/pg/postmaster.pid" ] || return 0
    harness_as_owner "$HARNESS_PGBIN/pg_ctl" -D "$1/pg" -m immediate -w stop >/dev/null 2>&1 || true
}

pg_psql() {
    local dir=$1
    shift
    (. "$dir/pg.env" && PGPASSWORD=$PG_SUPERPASS PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -X -q \
        -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" -v ON_ERROR_STOP=1 "$@")
}

# pg_start_peer DIR [PORT]: a cluster shaped like Debian's after `apt install postgresql`,
# as Mastodon's install guide uses it: no TCP at all, pg_hba.conf "local all postgres peer"
# and "local all all peer", no password anywhere. Its socket is in the private directory
# DIR/pgrun (PORT, default 5432, only names the socket file). Needs root (the server runs
# as the postgres OS user, clients as whoever peer authentication should see). Sets
# PG_PORT, PG_SOCK, PG_BIN and PG_PEER=1 and writes them to DIR/pg.env.
pg_start_peer() {
    local dir=$1 port=${2:-5432}
    [ "$(id -u)" = 0 ] || { echo "pg_start_peer: needs root" >&2; return 1; }
    mkdir -p "$dir/pg" "$dir/pgrun"
    chmod 711 "$dir"
    chmod o+x "$(dirname "$dir")" 2>/dev/null || true
    chmod 755 "$dir/pgrun"
    harness_chown_pg "$dir/pg" "$dir/pgrun"
    harness_as_owner "$HARNESS_PGBIN/initdb" -D "$dir/pg" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=reject >"$dir/pgrun/initdb.log" 2>&1 ||
        { cat "$dir/pgrun/initdb.log" >&2; return 1; }
    # Exactly the two lines of Debian's pg_hba.conf that matter here.
    printf 'local all postgres peer\nlocal all all peer\n' >"$dir/pg/pg_hba.conf"
    harness_chown_pg "$dir/pg/pg_hba.conf"
    harness_as_owner "$HARNESS_PGBIN/pg_ctl" -D "$dir/pg" -l "$dir/pgrun/pg.log" -w -t 60 \
        -o "-p $port -c listen_addresses= -c unix_socket_directories=$dir/pgrun -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null || { cat "$dir/pgrun/pg.log" >&2; return 1; }
    harness_on_exit "pg_kill '$dir'"
    PG_PORT=$port
    PG_SOCK=$dir/pgrun
    PG_BIN=$HARNESS_PGBIN
    PG_PEER=1
    cat >"$dir/pg.env" <<EOV
PG_PORT=$port
PG_SOCK=$dir/pgrun
PG_BIN=$HARNESS_PGBIN
PG_SUPERUSER=postgres
PG_PEER=1
EOV
}

# pg_peer_psql DIR OSUSER ARGS...: psql over DIR's socket as OSUSER (and the role of that
# name), the way peer authentication lets it in.
pg_peer_psql() {
    local dir=$1 user=$2
    shift 2
    (. "$dir/pg.env" && runuser -u "$user" -- env -i PATH=/usr/bin:/bin PGCONNECT_TIMEOUT=10 \
        "$PG_BIN/psql" -X -q -h "$PG_SOCK" -p "$PG_PORT" -v ON_ERROR_STOP=1 "$@")
}

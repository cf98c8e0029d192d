# A real pgbouncer (Debian's package) on a loopback port in front of the harness's
# PostgreSQL. Source this file (after pg.sh or mastodon.sh), then:
#   pgbouncer_start DIR MODE   MODE is transaction, statement or session. Needs DIR/pg.env
#                              (pg_start ran). Every database goes to that PostgreSQL over
#                              TCP ("* = host=127.0.0.1 port=PG_PORT"); the users postgres
#                              (also pgbouncer's admin) and mastodon log in with their
#                              passwords (scram-sha-256, as the harness's PostgreSQL asks).
#                              Writes DIR/pgbouncer/pgbouncer.ini and DIR/pgbouncer.env
#                              (PGB_PORT, PGB_INI, PGB_MODE). Stopped when the shell exits.
#   pgbouncer_stop DIR
#   pgbouncer_admin DIR SQL    runs SQL on pgbouncer's admin console as postgres
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$(dirname "${BASH_SOURCE[0]}")/netwait.sh"

# A userlist.txt line: the name and password in double quotes, quotes doubled.
pgbouncer_user_line() {
    printf '"%s" "%s"\n' "${1//\"/\"\"}" "${2//\"/\"\"}"
}

pgbouncer_start() {
    local dir=$1 mode=$2 port d=$1/pgbouncer
    command -v pgbouncer >/dev/null || { echo "pgbouncer_start: install Debian's pgbouncer (scripts/install-deps.sh)" >&2; return 1; }
    [ -f "$dir/pg.env" ] || { echo "pgbouncer_start: no PostgreSQL in $dir (pg_start first)" >&2; return 1; }
    local PG_PORT
    PG_PORT=$(. "$dir/pg.env" && echo "$PG_PORT")
    mkdir -p "$d"
    {
        pgbouncer_user_line "$PG_SUPERUSER" "$PG_SUPERPASS"
        pgbouncer_user_line mastodon "${MASTODON_DB_PASS:-}"
    } >"$d/userlist.txt"
    chmod 600 "$d/userlist.txt"
    local attempt
    for attempt in 1 2 3 4 5; do
        port=$(harness_free_port) || return 1
        cat >"$d/pgbouncer.ini" <<EOI
[databases]
* = host=127.0.0.1 port=$PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = $d
auth_type = scram-sha-256
auth_file = $d/userlist.txt
admin_users = $PG_SUPERUSER
pool_mode = $mode
max_client_conn = 100
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,search_path,options
logfile = $d/pgbouncer.log
pidfile = $d/pgbouncer.pid
EOI
        harness_chown_pg "$d"
        # pgbouncer refuses to run as root: as postgres, like PostgreSQL itself.
        harness_as_owner pgbouncer -d -q "$d/pgbouncer.ini" || { cat "$d/pgbouncer.log" >&2; return 1; }
        if harness_wait_port "$port" 30; then
            break
        fi
        pgbouncer_stop "$dir"
        if [ "$attempt" = 5 ] || ! grep -q "Address already in use" "$d/pgbouncer.log"; then
            echo "pgbouncer_start: pgbouncer did not listen on $port" >&2
            cat "$d/pgbouncer.log" >&2
            return 1
        fi
    done
    harness_on_exit "pgbouncer_stop '$dir'"
    PGB_PORT=$port
    PGB_INI=$d/pgbouncer.ini
    PGB_MODE=$mode
    cat >"$dir/pgbouncer.env" <<EOV
PGB_PORT=$port
PGB_INI=$d/pgbouncer.ini
PGB_MODE=$mode
EOV
}

pgbouncer_stop() {
    local pidf=$1/pgbouncer/pgbouncer.pid pid
    [ -f "$pidf" ] || return 0
    pid=$(cat "$pidf")
    harness_kill "$pid"
    # A process that is gone but not yet reaped still passes kill -0, and pgbouncer refuses
    # to start while its pidfile names a live process: the file goes with the process.
    rm -f "$pidf"
}

pgbouncer_admin() {
    local dir=$1
    shift
    (. "$dir/pg.env" && . "$dir/pgbouncer.env" && PGPASSWORD=$PG_SUPERPASS PGCONNECT_TIMEOUT=10 \
        "$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$PGB_PORT" -U "$PG_SUPERUSER" -d pgbouncer -c "$*")
}

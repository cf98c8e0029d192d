# A throwaway redis-server on a loopback port. Source this file, then:
#   redis_start DIR [--pass PW] [--user NAME PW RULES...] [--conf "directive value"]...
#       starts redis-server with its data in DIR/redis (dump.rdb) and writes DIR/redis.env
#       (REDIS_PORT, REDIS_DIR, REDIS_PASS). --pass sets requirepass (the default user's
#       password); --user adds an ACL user, e.g. --user backup pw '~*' '&*' '+@all' -sync -psync
#       (the rules end at the next option). Stopped when the shell exits.
#   redis_stop DIR
#   redis_cli DIR ARGS...   redis-cli as the default user (with the password, not on argv)
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# A redis.conf argument, quoted so that spaces and quotes survive.
redis_conf_quote() {
    local v=${1//\\/\\\\}
    v=${v//\"/\\\"}
    printf '"%s"' "$v"
}

redis_start() {
    local dir=$1 port pass="" conf
    shift
    port=$(harness_free_port) || return 1
    mkdir -p "$dir/redis"
    conf=$dir/redis.conf
    {
        echo "port $port"
        echo "bind 127.0.0.1"
        echo "dir $dir/redis"
        echo "dbfilename dump.rdb"
        echo "daemonize yes"
        echo "pidfile $dir/redis.pid"
        echo "logfile $dir/redis.log"
        echo "save \"\""
        echo "enable-debug-command local"
    } >"$conf"
    while [ $# -gt 0 ]; do
        case "$1" in
            --pass) pass=$2; echo "requirepass $(redis_conf_quote "$2")" >>"$conf"; shift 2 ;;
            --user)
                local line="user $(redis_conf_quote "$2") on $(redis_conf_quote ">$3")"
                shift 3
                while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do line="$line $(redis_conf_quote "$1")"; shift; done
                echo "$line" >>"$conf" ;;
            --conf) echo "$2" >>"$conf"; shift 2 ;;
            *) echo "redis_start: unknown option $1" >&2; return 1 ;;
        esac
    done
    chmod 600 "$conf"
    redis-server "$conf" || return 1
    # Taken meanwhile by another job on the machine? Then once more on another port.
    local tries
    for tries in 1 2 3 4; do
        sleep 0.1
        [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null && break
        grep -q "Address already in use" "$dir/redis.log" 2>/dev/null || break
        port=$(harness_free_port) || return 1
        sed -i "s/^port .*/port $port/" "$conf"
        : >"$dir/redis.log"
        redis-server "$conf" || return 1
    done
    harness_on_exit "redis_stop '$dir'"
    {
        echo "REDIS_PORT=$port"
        printf 'REDIS_DIR=%q\n' "$dir/redis"
        printf 'REDIS_PASS=%q\n' "$pass"
    } >"$dir/redis.env"
    REDIS_PORT=$port
    REDIS_DIR=$dir/redis
    REDIS_PASS=$pass
    local i
    # Generous: on a loaded machine a start (or loading a large dump) takes seconds.
    for i in $(seq 600); do
        [ "$(redis_cli "$dir" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.05
    done
    echo "redis_start: redis-server did not answer on port $port" >&2
    cat "$dir/redis.log" >&2
    return 1
}

redis_stop() {
    local dir=$1 pid
    [ -f "$dir/redis.pid" ] || return 0
    pid=$(cat "$dir/redis.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/redis.pid"
}

redis_cli() {
    local dir=$1
    shift
    (
        . "$dir/redis.env"
        [ -z "$REDIS_PASS" ] || export REDISCLI_AUTH=$REDIS_PASS
        redis-cli --no-auth-warning -h 127.0.0.1 -p "$REDIS_PORT" "$@"
    )
}

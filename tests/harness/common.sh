# Shared helpers for the test harness. Source it (pg.sh, redis.sh and mastodon.sh do).
#   harness_free_port          print a free TCP port on 127.0.0.1
#   harness_on_exit CMD...     run CMD when the shell exits (last added runs first)
#   harness_as_owner CMD...    run CMD as the `postgres` OS user when we are root
#   harness_chown_pg PATH...   give PATH to `postgres` when we are root
[ -n "${HARNESS_COMMON_LOADED:-}" ] && return 0
HARNESS_COMMON_LOADED=1

HARNESS_PGBIN=${HARNESS_PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -n "$HARNESS_PGBIN" ] || HARNESS_PGBIN=$(dirname "$(command -v initdb 2>/dev/null || echo /usr/bin/initdb)")

# Below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by default): a port
# in it can be taken, between this check and the server's bind, as the local end of any
# outgoing connection on the machine (a restored cluster failed so with "Address already
# in use" under load).
harness_free_port() {
    local p i lo=32768 hi
    read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    [ "${lo:-0}" -gt 15000 ] 2>/dev/null || lo=32768
    for i in $(seq 200); do
        p=$((10000 + RANDOM % (lo - 10000)))
        # Taken when something accepts a connection; also skip ports another harness in this
        # process handed out already.
        case " ${HARNESS_PORTS_GIVEN:-} " in *" $p "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            HARNESS_PORTS_GIVEN="${HARNESS_PORTS_GIVEN:-} $p"
            echo "$p"
            return 0
        fi
    done
    echo "harness: no free port" >&2
    return 1
}

HARNESS_EXIT_CMDS=()
harness_run_exit() {
    local i
    for ((i = ${#HARNESS_EXIT_CMDS[@]} - 1; i >= 0; i--)); do
        eval "${HARNESS_EXIT_CMDS[$i]}" >/dev/null 2>&1 || true
    done
    HARNESS_EXIT_CMDS=()
}
harness_on_exit() {
    HARNESS_EXIT_CMDS+=("$*")
    trap harness_run_exit EXIT
}

harness_as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

harness_chown_pg() {
    if [ "$(id -u)" = 0 ]; then chown -R postgres: "$@"; fi
}

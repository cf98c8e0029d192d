# Shared helpers for the test harness; source it (the other harness files do).

# harness_free_port: prints a loopback TCP port nobody listens on (random, 20000-59999).
harness_free_port() {
    local p i
    for i in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "harness: no free port found" >&2
    return 1
}

# harness_wait_port PORT [SECONDS]: waits until something accepts on 127.0.0.1:PORT.
harness_wait_port() {
    local port=$1 limit=${2:-20} i
    for i in $(seq 1 $((limit * 10))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "harness: nothing listens on 127.0.0.1:$port after ${limit}s" >&2
    return 1
}

# harness_on_exit CMD: runs CMD when the shell exits (adds to, never replaces, the trap).
HARNESS_EXIT_CMDS=${HARNESS_EXIT_CMDS:-}
harness_on_exit() {
    HARNESS_EXIT_CMDS="$1; $HARNESS_EXIT_CMDS"
    trap 'eval "$HARNESS_EXIT_CMDS"' EXIT
}

# harness_kill PID: stops a process we started, by its id, waiting for it to go.
harness_kill() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

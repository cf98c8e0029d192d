# Helpers for the sshd and s3rver harnesses (sourced by them).
[ -n "${HARNESS_NETWAIT_LOADED:-}" ] && return 0
HARNESS_NETWAIT_LOADED=1

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

# harness_kill PID: stops a process we started, by its id, waiting (5 s, then -9) for it.
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

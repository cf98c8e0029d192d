# An SFTP server for tests: OpenSSH's sshd on a loopback port, running as the current user
# with a throwaway host key and user key. Source this file, then
#   sshd_start DIR [PORT]   start it with everything under DIR; exports
#     SSHD_PORT, SSHD_PID, SSHD_URL (sftp://USER@127.0.0.1:PORT/DIR/sftp-root),
#     SSHD_KEY (the user's private key), SSHD_KNOWN_HOSTS (a known_hosts that trusts the
#     server), SSHD_HOST_KEY_FP (its SHA256 fingerprint) and SSHD_ROOT (the served folder)
#   sshd_kill_all           kill the server and every session process it forked (a crash)
#   sshd_stop               stop it (also done on exit)
# SSHD_SFTP_SUBSYSTEM, when set, replaces internal-sftp as the sftp subsystem command (for
# example tests/harness/sftp_cut.py, which drops the session on cue).
HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HARNESS_DIR/common.sh"
. "$HARNESS_DIR/netwait.sh"

sshd_start() {
    local dir=$1 port=${2:-} user sshd
    dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
    user=$(id -un)
    sshd=$(command -v sshd || echo /usr/sbin/sshd)
    [ -x "$sshd" ] || { echo "sshd_start: sshd not found: install openssh-server" >&2; return 1; }
    [ -n "$port" ] || port=$(harness_free_port) || return 1
    rm -f "$dir/host_ed25519" "$dir/host_ed25519.pub" "$dir/user_ed25519" "$dir/user_ed25519.pub"
    ssh-keygen -q -t ed25519 -N '' -C permafrost-test-host -f "$dir/host_ed25519" || return 1
    ssh-keygen -q -t ed25519 -N '' -C permafrost-test-user -f "$dir/user_ed25519" || return 1
    cp "$dir/user_ed25519.pub" "$dir/authorized_keys"
    chmod 600 "$dir/authorized_keys"
    mkdir -p "$dir/sftp-root"
    # sshd insists on this directory for privilege separation.
    [ -d /run/sshd ] || mkdir -p /run/sshd 2>/dev/null || true
    # A port that looked free may be taken before sshd binds it (other jobs on the machine):
    # try again on another one, as pg_start and redis_start do.
    local fixed=${2:-} attempt
    for attempt in 1 2 3 4 5; do
        _sshd_config "$dir" "$port" "$user"
        rm -f "$dir/sshd.pid"
        # -D: stay in the foreground so we know its pid; -e: log to stderr (our log file).
        # It writes its pid file once it listens, or exits when it cannot bind.
        "$sshd" -D -e -f "$dir/sshd_config" >"$dir/sshd.log" 2>&1 &
        SSHD_PID=$!
        local i
        for i in $(seq 200); do
            [ -s "$dir/sshd.pid" ] && break
            kill -0 "$SSHD_PID" 2>/dev/null || break
            sleep 0.1
        done
        if [ -s "$dir/sshd.pid" ] && harness_wait_port "$port" 20; then
            break
        fi
        kill "$SSHD_PID" 2>/dev/null
        wait "$SSHD_PID" 2>/dev/null
        if [ -n "$fixed" ] || [ "$attempt" = 5 ] || ! grep -q "Address already in use" "$dir/sshd.log"; then
            cat "$dir/sshd.log" >&2
            return 1
        fi
        port=$(harness_free_port) || return 1
    done
    harness_on_exit sshd_stop
    echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" >"$dir/known_hosts"
    export SSHD_PID SSHD_PORT=$port SSHD_DIR=$dir
    export SSHD_ROOT="$dir/sftp-root"
    export SSHD_URL="sftp://$user@127.0.0.1:$port$dir/sftp-root"
    export SSHD_KEY="$dir/user_ed25519"
    export SSHD_KNOWN_HOSTS="$dir/known_hosts"
    SSHD_HOST_KEY_FP=$(ssh-keygen -l -E sha256 -f "$dir/host_ed25519.pub" | cut -d' ' -f2)
    export SSHD_HOST_KEY_FP
}

_sshd_config() {
    local dir=$1 port=$2 user=$3
    cat >"$dir/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
StrictModes no
UsePAM no
AllowUsers $user
Subsystem sftp ${SSHD_SFTP_SUBSYSTEM:-internal-sftp}
LogLevel ERROR
MaxStartups 100:30:200
MaxSessions 100
CFG
}

# The session processes sshd forked for each connection (children of the listener).
_sshd_children() {
    ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '
}

sshd_kill_all() {
    local pid=${SSHD_PID:-} kids k g
    [ -n "$pid" ] || return 0
    kids=$(_sshd_children "$pid")
    kill -9 "$pid" 2>/dev/null || true
    for k in $kids; do
        for g in $(_sshd_children "$k"); do kill -9 "$g" 2>/dev/null || true; done
        kill -9 "$k" 2>/dev/null || true
    done
    wait "$pid" 2>/dev/null || true
    SSHD_PID=
}

sshd_stop() {
    local pid=${SSHD_PID:-} kids k
    [ -n "$pid" ] || return 0
    kids=$(_sshd_children "$pid")
    harness_kill "$pid"
    for k in $kids; do harness_kill "$k"; done
    wait "$pid" 2>/dev/null || true
    SSHD_PID=
}

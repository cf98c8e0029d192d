# permafrost as the database server's OS user runs it (archive_command, restore_command,
# wal-stream): from a directory that user can enter, with the environment a real setup
# gives it. Source this file, then:
#   pf_server_home DIR PASSPHRASE
#       makes DIR enterable (711) and puts there: empty.conf (an empty configuration, 644),
#       pass (PASSPHRASE, 600, the server user's) and permafrost (a copy of $PF, 755: the
#       build tree may be in a home that user cannot enter, /root on a fresh machine is 0700)
#   pf_server_wrapper DIR NAME REPO [VAR=VALUE...]
#       writes DIR/NAME (755), a script that runs DIR/permafrost with DIR/pass, REPO, the
#       key cache DIR/kc and DIR/empty.conf, PERMAFROST_PASSWORD unset, and the VAR=VALUEs
#       (e.g. PERMAFROST_LOCK_WAIT=30 TZ=UTC) exported
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

pf_server_home() {
    local dir=$1 pass=$2
    [ -n "${PF:-}" ] || { echo "pf_server_home: PF (the binary) is not set" >&2; return 1; }
    chmod 711 "$dir"
    : >"$dir/empty.conf"
    chmod 644 "$dir/empty.conf"
    printf '%s\n' "$pass" >"$dir/pass"
    harness_chown_pg "$dir/pass"
    chmod 600 "$dir/pass"
    cp "$PF" "$dir/permafrost"
    chmod 755 "$dir/permafrost"
}

pf_server_wrapper() {
    local dir=$1 name=$2 repo=$3
    shift 3
    {
        echo '#!/bin/sh'
        echo "export PERMAFROST_PASSWORD_FILE=$dir/pass PERMAFROST_REPO=$repo PERMAFROST_KEY_CACHE=$dir/kc"
        echo "export PERMAFROST_CONFIG=$dir/empty.conf${*:+ $*}"
        echo 'unset PERMAFROST_PASSWORD'
        echo "exec $dir/permafrost \"\$@\""
    } >"$dir/$name"
    chmod 755 "$dir/$name"
}

# The setup of the scripts that run `permafrost serve` behind a real sshd (serve.sh,
# writeonly.sh). Source it after tests/harness/sshd.sh and tests/lib/counting.sh, with T
# (the scratch directory), L (the log directory) and PF (the binary) set.
#   serve_sshd_start NAME   sshd_start in $T/sshd (three tries: its port may be taken
#                           meanwhile); the script stops, naming NAME, when it cannot. Sets
#                           SSH_BASE: ssh that trusts only this sshd and offers only -i KEY
#   serve_key_line KEY.pub SERVE-ARGS...   an authorized_keys line: KEY runs
#                           `permafrost serve SERVE-ARGS`, with the sanitizers' settings
#                           (sshd passes no environment)
#   refused_line DESCRIPTION WANT_RC TEXT...   the last run failed with WANT_RC, its error
#                           one line holding each TEXT
#   fingerprint DIR         every file of a repository but its locks, with its checksum

serve_sshd_start() {
    local name=$1 i
    for i in 1 2 3; do
        sshd_start "$T/sshd" >"$L/sshd-start" 2>&1 && break
        sshd_stop
        [ $i = 3 ] && { echo "FAIL $name: cannot start sshd: $(tail -5 "$L/sshd-start")"; exit 1; }
    done
    SSH_BASE="ssh -F /dev/null -o IdentitiesOnly=yes -o UserKnownHostsFile=$SSHD_KNOWN_HOSTS -o StrictHostKeyChecking=yes"
}

serve_key_line() {
    local key=$1 v env=""
    shift
    for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
        [ -n "${!v:-}" ] && env="$env $v=${!v}"
    done
    echo "command=\"${env:+env$env }$PF serve $*\",restrict $(cat "$key")"
}

refused_line() {
    local what=$1 want=$2 t
    shift 2
    if [ "$RC" != "$want" ] || [ "$(grep -c . "$ERR")" != 1 ]; then
        fail "$what: exit $RC (wanted $want), or not one line"
        show
        return
    fi
    for t in "$@"; do
        grep -qF -- "$t" "$ERR" || { fail "$what: no \"$t\" in: $(cat "$ERR")"; return; }
    done
    ok "$what: $(cut -c1-170 "$ERR")"
}

fingerprint() { (cd "$1" && find . -type f ! -path './locks/*' -print0 | sort -z | xargs -0 sha256sum); }

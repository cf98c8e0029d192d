#!/usr/bin/env bash
# The store drivers against real servers on loopback: OpenSSH's sshd (SFTP) and s3rver
# (S3). Runs the conformance suite against both, then the failures an operator will meet:
# wrong SSH key, changed or unknown host key, wrong S3 credentials, a missing bucket, and a
# server that dies mid-run (an error within the retry budget, never a hang) or drops its
# connections (the store reconnects).
#
# Uses $BUILD (default build) for $BUILD/tests/test_store_conformance; prints ok/FAIL lines
# and exits non-zero when anything failed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
CONF="$BUILD/tests/test_store_conformance"
. "$ROOT/tests/harness/sshd.sh"
. "$ROOT/tests/harness/s3rver.sh"

if [ ! -x "$CONF" ]; then
    (cd "$ROOT" && make -s BUILD="$BUILD" "$CONF") || { echo "FAIL store: cannot build $CONF"; exit 1; }
fi

TMP=$(mktemp -d /tmp/pf-store-it.XXXXXX)
harness_on_exit "rm -rf '$TMP'"
failures=0

ok() { echo "ok   store: $*"; }
fail() {
    echo "FAIL store: $*"
    failures=$((failures + 1))
}

# expect_probe NAME WANT_RC GREP... -- ARGS: runs a probe and checks its exit code and that
# its output holds every pattern.
expect_probe() {
    local name=$1 want=$2 out rc pat
    shift 2
    local pats=()
    while [ "$1" != "--" ]; do
        pats+=("$1")
        shift
    done
    shift
    out=$("$CONF" probe "$@" 2>&1)
    rc=$?
    if [ "$rc" != "$want" ]; then
        fail "$name: exit $rc, wanted $want: $out"
        return
    fi
    for pat in "${pats[@]}"; do
        if ! grep -qF -- "$pat" <<<"$out"; then
            fail "$name: output lacks '$pat': $out"
            return
        fi
    done
    ok "$name"
}

# Quick retries so fault cases finish fast; small pages and parts so paging and multipart
# are exercised with little data.
export PERMAFROST_RETRY_BASE_MS=50
export PERMAFROST_NET_TIMEOUT=10
export PERMAFROST_S3_MAX_KEYS=100
export PERMAFROST_S3_MULTIPART_THRESHOLD=$((6 * 1024 * 1024))
export PERMAFROST_S3_PART_SIZE=$((5 * 1024 * 1024))
export PERMAFROST_TEST_NONATOMIC="s3:" # s3rver writes objects in place
unset SSH_AUTH_SOCK                    # only the keys we name

sshd_start "$TMP/sshd" || { echo "FAIL store: cannot start sshd"; exit 1; }
s3rver_start "$TMP/s3" "" permafrost-test || { echo "FAIL store: cannot start s3rver"; exit 1; }
SFTP_URL="$SSHD_URL/repo"
S3_URL="$S3RVER_URL/some/prefix"

# --- conformance ---
start=$(date +%s.%N)
if PERMAFROST_TEST_SSH_KEY=$SSHD_KEY PERMAFROST_TEST_KNOWN_HOSTS=$SSHD_KNOWN_HOSTS \
    PERMAFROST_TEST_STORE_URLS="$SFTP_URL $S3_URL" "$CONF" >"$TMP/conformance.log" 2>&1; then
    ok "conformance (mem, local, sftp, s3) in $(echo "$(date +%s.%N) - $start" | bc | cut -c1-5) s"
else
    fail "conformance: see below"
    grep -v '^\[ RUN\|OK \]' "$TMP/conformance.log" | tail -40
fi

# --- SFTP faults ---
expect_probe "sftp works with the right key" 0 "probe: ok" -- \
    "$SFTP_URL" --key "$SSHD_KEY" --known-hosts "$SSHD_KNOWN_HOSTS"

ssh-keygen -q -t ed25519 -N '' -f "$TMP/wrong_key"
expect_probe "sftp wrong key: clear auth error" 1 "code=7 " "SSH authentication as" \
    "$TMP/wrong_key" "--ssh-key" -- \
    "$SFTP_URL" --key "$TMP/wrong_key" --known-hosts "$SSHD_KNOWN_HOSTS"

ssh-keygen -q -t ed25519 -N '' -f "$TMP/other_host"
echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$TMP/other_host.pub")" >"$TMP/kh_mismatch"
expect_probe "sftp host key mismatch: refused, fingerprint shown" 1 "code=7 " \
    "does not match" "intercepting" "$SSHD_HOST_KEY_FP" -- \
    "$SFTP_URL" --key "$SSHD_KEY" --known-hosts "$TMP/kh_mismatch"

: >"$TMP/kh_empty"
expect_probe "sftp unknown host key: refused with fingerprint and --ssh-accept-new" 1 \
    "code=7 " "is not known" "$SSHD_HOST_KEY_FP" "--ssh-accept-new" -- \
    "$SFTP_URL" --key "$SSHD_KEY" --known-hosts "$TMP/kh_empty"
expect_probe "sftp unknown host key with accept-new: accepted" 0 "probe: ok" -- \
    "$SFTP_URL" --key "$SSHD_KEY" --known-hosts "$TMP/kh_empty" --accept-new --connections 4 \
    --loops 4
if [ "$(grep -c . "$TMP/kh_empty")" = 1 ]; then
    ok "sftp accept-new recorded the key once"
else
    fail "sftp accept-new: known_hosts has $(grep -c . "$TMP/kh_empty") lines: $(cat "$TMP/kh_empty")"
fi
expect_probe "sftp recorded host key is trusted next time" 0 "probe: ok" -- \
    "$SFTP_URL" --key "$SSHD_KEY" --known-hosts "$TMP/kh_empty"

# An impostor with another kind of host key: a second sshd serving the same files with an
# ECDSA key only, on a port known_hosts knows by the real server's ED25519 key. It is a
# mismatch (not "unknown"), and --ssh-accept-new must not record it.
ssh-keygen -q -t ecdsa -b 256 -N '' -f "$TMP/impostor_ecdsa"
IMP_PORT=$(harness_free_port)
sed -e "s|^Port .*|Port $IMP_PORT|" -e "s|^HostKey .*|HostKey $TMP/impostor_ecdsa|" \
    -e "s|^PidFile .*|PidFile $TMP/impostor.pid|" "$SSHD_DIR/sshd_config" >"$TMP/impostor_config"
"$(command -v sshd || echo /usr/sbin/sshd)" -D -e -f "$TMP/impostor_config" >"$TMP/impostor.log" 2>&1 &
IMP_PID=$!
harness_on_exit "harness_kill $IMP_PID"
harness_wait_port "$IMP_PORT" 20 || fail "impostor sshd did not start: $(cat "$TMP/impostor.log")"
IMP_URL="sftp://$(id -un)@127.0.0.1:$IMP_PORT$SSHD_ROOT/repo"
echo "[127.0.0.1]:$IMP_PORT $(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519.pub")" >"$TMP/kh_other_kind"
cp "$TMP/kh_other_kind" "$TMP/kh_other_kind.orig"
expect_probe "sftp host known by ED25519 showing ECDSA: refused as a mismatch" 1 "code=7 " \
    "shows no host key of the kind" "(ED25519)" "intercepting" -- \
    "$IMP_URL" --key "$SSHD_KEY" --known-hosts "$TMP/kh_other_kind"
expect_probe "sftp host known by ED25519 showing ECDSA: --ssh-accept-new refuses it too" 1 \
    "code=7 " "intercepting" -- \
    "$IMP_URL" --key "$SSHD_KEY" --known-hosts "$TMP/kh_other_kind" --accept-new
if cmp -s "$TMP/kh_other_kind" "$TMP/kh_other_kind.orig"; then
    ok "sftp impostor with another key kind: known_hosts untouched"
else
    fail "sftp impostor with another key kind recorded: $(cat "$TMP/kh_other_kind")"
fi
# The same host known by both kinds is fine (the restriction lists every recorded kind).
cat "$TMP/kh_other_kind" >"$TMP/kh_both"
echo "[127.0.0.1]:$IMP_PORT $(cut -d' ' -f1,2 "$TMP/impostor_ecdsa.pub")" >>"$TMP/kh_both"
expect_probe "sftp host known by ED25519 and ECDSA: accepted" 0 "probe: ok" -- \
    "$IMP_URL" --key "$SSHD_KEY" --known-hosts "$TMP/kh_both"
# Known by a hashed name only (ssh-keygen -H): still recognised, still restricted.
cp "$TMP/kh_other_kind.orig" "$TMP/kh_hashed"
ssh-keygen -q -H -f "$TMP/kh_hashed" >/dev/null 2>&1
grep -q '^|1|' "$TMP/kh_hashed" || fail "ssh-keygen -H did not hash $TMP/kh_hashed"
expect_probe "sftp host known by a hashed name showing another kind: refused" 1 "code=7 " \
    "shows no host key of the kind" -- \
    "$IMP_URL" --key "$SSHD_KEY" --known-hosts "$TMP/kh_hashed" --accept-new
harness_kill "$IMP_PID"

# --- S3 faults ---
expect_probe "s3 works with the right credentials" 0 "probe: ok" -- "$S3_URL"
AWS_ACCESS_KEY_ID=WRONGKEY expect_probe "s3 wrong credentials: clear auth error" 1 \
    "code=7 " "AWS_ACCESS_KEY_ID" -- "$S3_URL"
expect_probe "s3 missing bucket: says create it first" 1 "does not exist" "create it first" -- \
    "s3:$S3RVER_ENDPOINT/no-such-bucket/x"
AWS_ACCESS_KEY_ID= expect_probe "s3 no credentials: says which variables" 1 "code=7 " \
    "AWS_ACCESS_KEY_ID" -- "$S3_URL"

# TLS is verified: a real TLS server (openssl s_server) with a certificate no CA signed is
# refused before any request is sent, without retries, whatever the environment says.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$TMP/tls.key" -out "$TMP/tls.crt" >/dev/null 2>&1
TLS_PORT=$(harness_free_port)
openssl s_server -quiet -accept "127.0.0.1:$TLS_PORT" -cert "$TMP/tls.crt" -key "$TMP/tls.key" -www \
    >"$TMP/tls.log" 2>&1 </dev/null &
TLS_PID=$!
harness_on_exit "harness_kill $TLS_PID"
harness_wait_port "$TLS_PORT" 20 || fail "openssl s_server did not start: $(cat "$TMP/tls.log")"
SSL_CERT_FILE=$TMP/tls.crt CURL_CA_BUNDLE=$TMP/tls.crt expect_probe \
    "s3 over https with an untrusted certificate: refused" 1 "retryable=0" "certificate" -- \
    "s3:https://127.0.0.1:$TLS_PORT/bucket/x"
harness_kill "$TLS_PID"

# --- dropped connections: the store reconnects ---
"$CONF" probe "$SFTP_URL" --key "$SSHD_KEY" --known-hosts "$SSHD_KNOWN_HOSTS" --loops 400 \
    --connections 2 >"$TMP/drop.out" 2>&1 &
probe_pid=$!
sleep 1
for k in $(ps -o pid= --ppid "$SSHD_PID" | tr -d ' '); do kill -9 "$k" 2>/dev/null; done
wait "$probe_pid"
if grep -q "probe: ok" "$TMP/drop.out"; then
    ok "sftp sessions killed mid-run: reconnected and finished"
else
    fail "sftp sessions killed mid-run: $(cat "$TMP/drop.out")"
fi

# --- servers killed mid-run: an error within the retry budget, no hang ---
# Budget: 6 attempts, 50 ms doubling (about 1.6 s of sleeps) plus connect attempts.
killed_midrun() {
    local name=$1 killcmd=$2
    shift 2
    local t0 t1 rc
    t0=$(date +%s)
    "$CONF" probe "$@" --loops 100000 >"$TMP/kill.out" 2>&1 &
    local pid=$!
    sleep 1.5
    eval "$killcmd"
    # The probe must give up by itself; 60 s is far beyond any legitimate budget.
    for _ in $(seq 600); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid"
        wait "$pid" 2>/dev/null
        fail "$name: still running 60 s after the server died"
        return
    fi
    wait "$pid"
    rc=$?
    t1=$(date +%s)
    if [ "$rc" = 1 ] && grep -q "retryable=1" "$TMP/kill.out" && grep -q "gave up after" "$TMP/kill.out"; then
        ok "$name: failed after $((t1 - t0 - 1)) s: $(sed 's/^probe: //' "$TMP/kill.out" | tail -1 | cut -c1-160)"
    else
        fail "$name: exit $rc: $(tail -3 "$TMP/kill.out")"
    fi
}
killed_midrun "sftp server killed mid-run" sshd_kill_all \
    "$SFTP_URL" --key "$SSHD_KEY" --known-hosts "$SSHD_KNOWN_HOSTS"
killed_midrun "s3 server killed mid-run" s3rver_stop "$S3_URL"

# --- a session that dies in the middle of a listing or a read: the store reconnects and
# frees what libssh2 held for the dead session (under ASan, a handle left open is a leak;
# sftp_cut.py drops the session at the first READDIR, then at the first READ) ---
sftp_cut() {
    local name=$1 type=$2
    SSHD_SFTP_SUBSYSTEM="$PF_SRC/tests/harness/sftp_cut.py $type $TMP/cut-$name" \
        sshd_start "$TMP/sshd-cut-$name" || { fail "$name: cannot start sshd"; return; }
    "$CONF" probe "$SSHD_URL/repo" --key "$SSHD_KEY" --known-hosts "$SSHD_KNOWN_HOSTS" \
        --loops 3 --connections 1 >"$TMP/cut-$name.out" 2>&1
    if [ -e "$TMP/cut-$name" ] && grep -q "probe: ok" "$TMP/cut-$name.out"; then
        ok "sftp session dropped during $name: reconnected and finished"
    else
        fail "sftp session dropped during $name: $(tail -2 "$TMP/cut-$name.out")"
    fi
    sshd_kill_all
}
if command -v python3 >/dev/null && [ -x /usr/lib/openssh/sftp-server ]; then
    sftp_cut readdir 12
    sftp_cut read 5
else
    fail "sftp session drops: needs python3 and /usr/lib/openssh/sftp-server (openssh-server)"
fi

# --- a server that offers only ciphers and MACs the driver refuses (CBC, SHA-1): no session
# on them, and the error says why (not "host key", not retryable) ---
if sshd_start "$TMP/sshd-weak" >"$TMP/weak-start.log" 2>&1; then
    sshd_kill_all
    printf 'Ciphers aes256-cbc,aes128-cbc\nMACs hmac-sha1\n' >>"$SSHD_DIR/sshd_config"
    "$(command -v sshd || echo /usr/sbin/sshd)" -D -e -f "$SSHD_DIR/sshd_config" >>"$SSHD_DIR/sshd.log" 2>&1 &
    SSHD_PID=$!
    if harness_wait_port "$SSHD_PORT" 20; then
        expect_probe "sftp server with only CBC ciphers and hmac-sha1: refused as weak" 1 \
            "retryable=0" "refuses as weak" "aes256-cbc" -- \
            "$SSHD_URL/weak" --key "$SSHD_KEY" --known-hosts "$SSHD_KNOWN_HOSTS"
    else
        fail "weak ciphers: sshd did not restart: $(tail -3 "$SSHD_DIR/sshd.log")"
    fi
    sshd_kill_all
else
    fail "weak ciphers: cannot start sshd: $(tail -3 "$TMP/weak-start.log")"
fi

if [ "$failures" -gt 0 ]; then
    echo "store: $failures check(s) failed"
    exit 1
fi
echo "store: all checks passed"

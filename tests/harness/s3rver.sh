# An S3 server for tests: s3rver from npm on a loopback port. Source this file, then
#   s3rver_start DIR [PORT] [BUCKET]   start it with data in DIR and BUCKET (default
#                                      "permafrost") created; exports
#     S3RVER_PORT, S3RVER_PID, S3RVER_ENDPOINT (http://127.0.0.1:PORT),
#     S3RVER_URL (s3:http://127.0.0.1:PORT/BUCKET) and the AWS_* variables it accepts
#   s3rver_stop                        stop it (also done on exit)
# Notes: s3rver checks the access key id but not SigV4 signatures; it writes objects in
# place (a reader can see a partial object); its list continuation tokens use DES, which
# Node needs the OpenSSL legacy provider for.
HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HARNESS_DIR/common.sh"
. "$HARNESS_DIR/netwait.sh"

s3rver_start() {
    local dir=$1 port=${2:-} bucket=${3:-permafrost}
    local root bin
    root=$(cd "$HARNESS_DIR/../.." && pwd)
    bin=${S3RVER:-$root/build/node/node_modules/.bin/s3rver}
    if [ ! -x "$bin" ]; then
        echo "s3rver_start: $bin is missing: run scripts/install-deps.sh" >&2
        return 1
    fi
    local fixed=$port attempt
    mkdir -p "$dir/s3rver"
    harness_on_exit s3rver_stop
    # A free port can be taken by another program before s3rver binds it: then another.
    for attempt in 1 2 3; do
        [ -n "$fixed" ] || port=$(harness_free_port) || return 1
        NODE_OPTIONS="${NODE_OPTIONS:-} --openssl-legacy-provider" "$bin" --directory "$dir/s3rver" --port "$port" --address 127.0.0.1 --silent \
            --configure-bucket "$bucket" >"$dir/s3rver.log" 2>&1 &
        S3RVER_PID=$!
        s3rver_wait "$port" && break
        s3rver_stop
        if [ -n "$fixed" ] || [ "$attempt" = 3 ] || ! grep -q EADDRINUSE "$dir/s3rver.log"; then
            cat "$dir/s3rver.log" >&2
            return 1
        fi
    done
    export S3RVER_PID S3RVER_PORT=$port
    export S3RVER_ENDPOINT="http://127.0.0.1:$port"
    export S3RVER_URL="s3:http://127.0.0.1:$port/$bucket"
    export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=us-east-1
    unset AWS_SESSION_TOKEN
}

# s3rver_wait PORT: until the s3rver just started accepts on PORT (0), or it has exited
# or 30 s went by (1). Not harness_wait_port: a program that took the port first could be
# what accepts.
s3rver_wait() {
    local port=$1 i
    for i in $(seq 1 300); do
        kill -0 "$S3RVER_PID" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            kill -0 "$S3RVER_PID" 2>/dev/null && return 0
            return 1
        fi
        sleep 0.1
    done
    echo "harness: s3rver does not listen on 127.0.0.1:$port after 30 s" >&2
    return 1
}

s3rver_stop() {
    if [ -n "${S3RVER_PID:-}" ]; then
        harness_kill "$S3RVER_PID"
        wait "$S3RVER_PID" 2>/dev/null || true
        S3RVER_PID=
    fi
}

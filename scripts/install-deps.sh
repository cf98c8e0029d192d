#!/usr/bin/env bash
# Installs what building and testing permafrost needs, from Debian's packages and npm,
# only when something is missing. Runs as root, or through sudo where present.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(build-essential pkg-config clang libclang-rt-14-dev libpq-dev libhiredis-dev libzstd-dev
      libssl-dev libcurl4-openssl-dev libssh2-1-dev libinih-dev libcjson-dev libcmocka-dev
      postgresql postgresql-contrib redis-server openssh-server openssh-client
      procps psmisc bc time python3 strace curl
      pgbouncer # tests/harness/pgbouncer.sh: restore and dump behind a real pgbouncer
      systemd) # systemd-analyze verify of contrib/systemd (tests/integration/units.sh); it
               # works in a chroot or container without a running systemd
missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js may come from elsewhere than Debian; only ask Debian for it when absent.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The S3-protocol test server, kept inside the build tree.
if [ ! -x build/node/node_modules/.bin/s3rver ]; then
    echo "install-deps: installing s3rver (npm)"
    mkdir -p build/node
    npm install --prefix build/node --no-audit --no-fund --loglevel=error s3rver >/dev/null
fi

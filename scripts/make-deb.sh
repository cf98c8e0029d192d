#!/usr/bin/env bash
# Builds a Debian package of permafrost from the built tree: build/permafrost_VERSION_ARCH.deb.
#
#   scripts/make-deb.sh            (run by `make deb`, after `make all`)
#
# The package holds what `make install PREFIX=/usr` installs (the binary, both man pages, the
# systemd units under /lib/systemd/system, the example configuration under
# /usr/share/doc/permafrost), plus Debian's copyright and changelog files. Depends is worked out
# by dpkg-shlibdeps from the libraries the binary links, plus the programs permafrost runs:
# pg_dump, pg_restore and psql (postgresql-client). The units are installed, not enabled: an
# operator enables the timers after writing /etc/permafrost.conf, as the README says.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    printf 'make-deb: %s\n' "$*" >&2
    exit 1
}

[ -x permafrost ] || die "./permafrost is not built: run make first"
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing: apt-get install dpkg-dev"
command -v dpkg-shlibdeps >/dev/null || die "dpkg-shlibdeps is missing: apt-get install dpkg-dev"

version=$(sed -n 's/^#define PF_VERSION "\(.*\)"$/\1/p' src/cli/cli.h)
[ -n "$version" ] || die "cannot read PF_VERSION from src/cli/cli.h"
arch=$(dpkg --print-architecture)
out=build/permafrost_${version}_${arch}.deb

stage=$(mktemp -d build/deb.XXXXXX)
trap 'rm -rf "$stage"' EXIT
root=$stage/root

make -s install DESTDIR="$PWD/$root" PREFIX=/usr SYSTEMDDIR=/lib/systemd/system >/dev/null
strip --strip-unneeded "$root/usr/bin/permafrost"
gzip -9n "$root/usr/share/man/man1/permafrost.1" "$root/usr/share/man/man5/permafrost.conf.5"

doc=$root/usr/share/doc/permafrost
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: permafrost
Comment: Built from the permafrost source tree by scripts/make-deb.sh.

Files: *
Copyright: the permafrost developers
License: none-published
 The permafrost developers have not yet published a license for this software.
EOF
printf 'permafrost (%s) unstable; urgency=medium\n\n  * Package built from the source tree (%s).\n\n -- permafrost developers <permafrost@localhost>  %s\n' \
    "$version" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$(date -R)" |
    gzip -9n >"$doc/changelog.gz"

# dpkg-shlibdeps wants a debian/control naming the binary package; a throwaway one will do.
mkdir -p "$stage/src/debian"
printf 'Source: permafrost\n\nPackage: permafrost\nArchitecture: any\n' >"$stage/src/debian/control"
shlibs=$(cd "$stage/src" && dpkg-shlibdeps -O "$PWD/../root/usr/bin/permafrost" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no library dependencies for usr/bin/permafrost"

size=$(du -sk "$root" | cut -f1)
mkdir -p "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<EOF
Package: permafrost
Version: $version
Architecture: $arch
Maintainer: permafrost developers <permafrost@localhost>
Installed-Size: $size
Depends: $shlibs, postgresql-client
Recommends: openssh-client
Suggests: redis-tools
Section: admin
Priority: optional
Description: backup and disaster recovery for Mastodon servers
 permafrost backs up a whole Mastodon server in one command: the PostgreSQL
 database, the secrets in .env.production, the uploaded media and Redis, into
 a deduplicated, compressed and encrypted repository on a local disk, over
 SFTP or on S3, and restores it onto a fresh machine in one command.
 .
 The package installs the systemd units (not enabled) and an example
 configuration in /usr/share/doc/permafrost.
EOF
# Everything root-owned, whoever builds it.
chmod -R go-w "$root"
dpkg-deb --root-owner-group --build "$root" "$out.tmp" >/dev/null
mv -f "$out.tmp" "$out"
echo "$out"

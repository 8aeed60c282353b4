#!/usr/bin/env bash
# Builds the Debian package from a staged `make install` tree, with dpkg-deb and no network.
#   scripts/make-deb.sh ROOT VERSION ARCH OUT.deb
# Runtime dependencies are those of the shared libraries the binary links (dpkg-shlibdeps;
# without it, the packages that own the libraries ldd resolves). Every file under /etc is a
# conffile. The maintainer scripts are in scripts/deb/.
set -euo pipefail
root=$(cd "$1" && pwd) version=$2 arch=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
bin=$root/usr/sbin/airouter

strip --strip-unneeded "$bin"
gzip -9nf "$root"/usr/share/man/man*/*
install -d "$root/usr/share/doc/airouter"
gzip -9nc "$here/../README.md" > "$root/usr/share/doc/airouter/README.md.gz"

depends() {
    if command -v dpkg-shlibdeps >/dev/null; then
        local work
        work=$(mktemp -d)
        # dpkg-shlibdeps reads debian/control of the source package it thinks it is in.
        mkdir "$work/debian"
        printf 'Source: airouter\n\nPackage: airouter\nArchitecture: any\n' > "$work/debian/control"
        (cd "$work" && dpkg-shlibdeps -O -e"$bin" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
        rm -rf "$work"
    else
        ldd "$bin" | awk '$3 ~ /^\// { print $3 }' | while read -r lib; do
            dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null
        done | cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g'
    fi
}
deps=$(depends)
[ -n "$deps" ] || { echo "make-deb: could not work out the dependencies" >&2; exit 1; }

install -d -m 0755 "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: airouter
Version: $version
Architecture: $arch
Maintainer: ${DEB_MAINTAINER:-airouter maintainers <root@localhost>}
Section: net
Priority: optional
Depends: $deps, adduser
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Description: OpenAI-API-compatible router for AI model serving
 airouter maps each request's model name to a backend (OpenAI-compatible
 servers, NVIDIA Triton over gRPC, Anthropic, or a built-in echo backend),
 translates protocol and prompt format, and relays the answer, streaming or
 not. A prefork master supervises worker processes with nginx-style signals.
CONTROL
(cd "$root" && find etc -type f | sort | sed 's|^|/|') > "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do
    install -m 0755 "$here/deb/$s" "$root/DEBIAN/$s"
done
mkdir -p "$(dirname "$out")"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "make-deb: $out (Depends: $deps, adduser)"

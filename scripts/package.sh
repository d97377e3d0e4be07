#!/usr/bin/env bash
# Builds the SFU's Debian package (dpkg-deb, Debian's own tool): sfu_VERSION_ARCH.deb with
#   /usr/bin/sfu-supervisor, sfu-monitor, sfu-loadgen   (the page is inside the supervisor)
#   /usr/lib/sfu/node, /usr/lib/sfu/recorder            (spawned by the supervisor; /usr/bin/node
#                                                        is Node.js, hence the prefix and folder)
#   /lib/systemd/system/sfu.service                     (deploy/debian/sfu.service)
#   /etc/sfu/sfu.env                                    (every setting, commented: a conffile)
#   /usr/share/man/man1/sfu-*.1.gz                      (help2man, from each --help)
# and maintainer scripts that add the `sfu` system user (deploy/debian/postinst, prerm, postrm).
#
#   scripts/package.sh [--profile release|debug] [--bin-dir DIR] [--version V] [--out DIR]
#                      [--compression xz|zstd|gzip|none]
#
#   --profile      which cargo build goes in (release by default)
#   --bin-dir      package the binaries already built in DIR instead of building (the
#                  tests package their debug build this way)
#   --version      the package version (default: the workspace's, from Cargo.toml)
#   --out          where the .deb goes (default: target/debian)
#   --compression  dpkg-deb's (default xz, as Debian's archive)
# Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'package: %s\n' "$*" >&2; }
die() { printf 'package: error: %s\n' "$*" >&2; exit 1; }

profile=release
version=
out=target/debian
bin=
compression=xz
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="${2:-}"; shift 2 ;;
        --version) version="${2:-}"; shift 2 ;;
        --out) out="${2:-}"; shift 2 ;;
        --bin-dir) bin="${2:-}"; shift 2 ;;
        --compression) compression="${2:-}"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
case "$profile" in release|debug) ;; *) die "--profile is release or debug, not $profile" ;; esac
case "$compression" in xz|zstd|gzip|none) ;; *) die "--compression is xz, zstd, gzip or none" ;; esac
[ -n "$version" ] || version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "not a Debian version: $version"

if [ -z "$bin" ]; then
    scripts/setup.sh --package
    flags=(--locked --bin supervisor --bin node --bin monitor --bin loadgen --bin recorder)
    [ "$profile" = release ] && flags+=(--release)
    say "building ($profile)"
    cargo build "${flags[@]}" >&2
    bin=target/$profile
else
    for tool in help2man dpkg-shlibdeps strip; do
        command -v "$tool" >/dev/null || die "$tool is missing: scripts/setup.sh --package"
    done
fi
for b in supervisor node monitor loadgen recorder; do
    [ -x "$bin/$b" ] || die "$bin/$b is not built (run without --bin-dir)"
done
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/sfu" "$root/lib/systemd/system" \
    "$root/etc/sfu" "$root/usr/share/man/man1" "$root/usr/share/doc/sfu"
# Stripped: a package carries no debug symbols (a debug build's are hundreds of MB).
for b in supervisor monitor loadgen; do
    strip --strip-unneeded -o "$root/usr/bin/sfu-$b" "$bin/$b"
done
for b in node recorder; do
    strip --strip-unneeded -o "$root/usr/lib/sfu/$b" "$bin/$b"
done
chmod 0755 "$root"/usr/bin/* "$root"/usr/lib/sfu/*

install -m 0644 deploy/debian/sfu.service "$root/lib/systemd/system/sfu.service"
{
    cat <<'HEADER'
# Settings of the SFU, read by sfu.service (systemd's EnvironmentFile: NAME=value, one per
# line, no quotes needed, no shell expansion). Uncomment what you change, then
#   systemctl restart sfu        (a renewed certificate only needs: systemctl reload sfu)
# Every setting is also a flag: sfu-supervisor --help, man sfu-supervisor.
#
# As installed, the SFU serves plain HTTP on 127.0.0.1:8000: put a TLS proxy in front of it
# (README "Behind a reverse proxy"), or serve TLS itself with TLS_MODE=1, TLS_CERT_PATH,
# TLS_KEY_PATH and PUBLIC_IP (the service may bind port 443: it has CAP_NET_BIND_SERVICE).
#
# Secrets do not go in this file: write each to a file readable by the service
#   install -m 0640 -g sfu /dev/stdin /etc/sfu/join-secret <<< "$(openssl rand -hex 32)"
# and point the *_FILE setting at it (JOIN_SECRET_FILE, MONITOR_TOKEN_FILE, TURN_SECRET_FILE,
# CLUSTER_SECRET_FILE).
HEADER
    "$bin/supervisor" env-file
} > "$root/etc/sfu/sfu.env"
chmod 0640 "$root/etc/sfu/sfu.env"

say "writing the man pages"
manned=$stage/bin
install -d "$manned"
declare -A names=(
    [supervisor]="WebRTC SFU: signaling, rooms and the pool of media nodes"
    [monitor]="query and follow a running SFU"
    [loadgen]="load and call-quality generator for the SFU"
)
for b in supervisor monitor loadgen; do
    cp "$root/usr/bin/sfu-$b" "$manned/sfu-$b"
    help2man --no-info --no-discard-stderr --section 1 --name "${names[$b]}" \
        --version-string "$version" \
        --output "$root/usr/share/man/man1/sfu-$b.1" "$manned/sfu-$b" \
        || die "help2man sfu-$b failed"
    gzip -9n "$root/usr/share/man/man1/sfu-$b.1"
done

cat > "$root/usr/share/doc/sfu/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sfu
License: MIT or Apache-2.0
Comment: The media workers are mediasoup's (ISC license), built into /usr/lib/sfu/node.
COPYRIGHT

# Library dependencies as Debian computes them (dpkg-shlibdeps wants a debian/control).
install -d "$stage/src/debian"
printf 'Source: sfu\n\nPackage: sfu\nArchitecture: any\n' > "$stage/src/debian/control"
depends=$(cd "$stage/src" && dpkg-shlibdeps -O \
    -e"$root/usr/bin/sfu-supervisor" -e"$root/usr/bin/sfu-monitor" \
    -e"$root/usr/bin/sfu-loadgen" -e"$root/usr/lib/sfu/node" -e"$root/usr/lib/sfu/recorder" 2>/dev/null \
    | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || die "dpkg-shlibdeps found no dependencies"

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: sfu
Version: $version
Architecture: $arch
Maintainer: SFU developers <sfu@localhost>
Installed-Size: $size
Depends: $depends, gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad, passwd, init-system-helpers (>= 1.54)
Section: net
Priority: optional
Homepage: https://localhost/sfu
Description: WebRTC selective forwarding unit on mediasoup
 Browsers and other WebRTC clients join rooms over a WebSocket (or WHIP/WHEP),
 publish audio and video and receive everyone else's, forwarded, never transcoded.
 A supervisor serves signaling, the demo page and metrics, and runs a pool of
 media node processes; hosts may form a cluster through etcd. Runs as the
 systemd service sfu, configured in /etc/sfu/sfu.env.
CONTROL
echo /etc/sfu/sfu.env > "$root/DEBIAN/conffiles"
install -m 0755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$root/DEBIAN/"

mkdir -p "$out"
deb="$out/sfu_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"$compression" --build "$root" "$deb" >&2
say "built $deb ($(du -h "$deb" | cut -f1))"
echo "$deb"

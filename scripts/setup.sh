#!/usr/bin/env bash
# Installs or builds what the SFU and its tests need, from package registries only:
#   Debian packages (as root; otherwise prints the apt-get line to run), the mediasoup
#   build kit's tools (mediasoup-build-kit/prepare), and the npm packages of the demo page
#   and of the browser tests, into the project's own folders. Safe to run again.
#   scripts/setup.sh            what running the SFU needs
#   scripts/setup.sh --package  plus what scripts/package.sh needs (help2man, dpkg-dev)
#   scripts/setup.sh --tests    plus what the test suite needs (Chromium, Janus, tmux, etcd,
#                               and the package's tools: a test builds and installs it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

want_tests=0
want_package=0
[ "${1:-}" = "--tests" ] && want_tests=1 && want_package=1
[ "${1:-}" = "--package" ] && want_package=1

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is missing: install Rust from https://rustup.rs (1.85 or newer)"

debs=()
for cmd_pkg in node:nodejs npm:npm pkg-config:pkg-config; do
    command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || debs+=("${cmd_pkg#*:}")
done
# protoc: the etcd client's gRPC stubs (cluster mode) are generated at build time.
command -v protoc >/dev/null 2>&1 || debs+=(protobuf-compiler)
# GStreamer (headers for gstreamer-rs; the RTP depacketizers, parsers and muxers at run time):
# the recorder process writes recorded tracks with it.
for deb in libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-plugins-good gstreamer1.0-plugins-bad; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || debs+=("$deb")
done
# OpenSSL headers: the test peer's DTLS (and the build kit's static libraries).
dpkg-query -W -f='${Status}' libssl-dev 2>/dev/null | grep -q "ok installed" || debs+=(libssl-dev)
if [ "$want_package" = 1 ]; then
    # help2man: the man pages from --help; dpkg-shlibdeps: the package's library dependencies.
    for cmd_pkg in help2man:help2man dpkg-shlibdeps:dpkg-dev strip:binutils; do
        command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || debs+=("${cmd_pkg#*:}")
    done
fi
if [ "$want_tests" = 1 ]; then
    # janus: the load tests compare with it (bench/janus.sh builds a small shim with cc).
    for cmd_pkg in chromium:chromium tmux:tmux janus:janus cc:gcc; do
        command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || debs+=("${cmd_pkg#*:}")
    done
    # ffmpeg/ffprobe: the recording tests send test patterns and read back what was written.
    command -v ffprobe >/dev/null 2>&1 || debs+=(ffmpeg)
    # janus-pp-rec and GNU time: the recording benchmark times Janus' post-processing.
    command -v janus-pp-rec >/dev/null 2>&1 || debs+=(janus-tools)
    [ -x /usr/bin/time ] || debs+=(time)
    # etcd: the cluster tests start their own (Debian's etcd-server, 3.4).
    [ -x /usr/bin/etcd ] || debs+=(etcd-server)
    # coturn: the TURN tests run Debian's turnserver in a namespace of their own.
    [ -x /usr/bin/turnserver ] || debs+=(coturn)
    # prometheus (with promtool): the observability test scrapes an SFU with it.
    [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] || debs+=(prometheus)
    # iptables-legacy: the firewall tests drop a client namespace's UDP (this kernel has no nft).
    [ -x /usr/sbin/iptables-legacy ] || debs+=(iptables)
    # nginx: the reverse-proxy test runs the demo behind it (its own config, never the service).
    [ -x /usr/sbin/nginx ] || debs+=(nginx)
    # caddy: the same with Debian's Caddy (its own config; the service is never started).
    [ -x /usr/bin/caddy ] || debs+=(caddy)
    # GStreamer's webrtcbin: the WHIP tests' publisher (tests/whip/gst_whip.py).
    /usr/bin/python3 -c 'import gi; gi.require_version("GstWebRTC", "1.0"); from gi.repository import GstWebRTC' 2>/dev/null \
        || debs+=(python3-gst-1.0 gir1.2-gst-plugins-bad-1.0 gstreamer1.0-plugins-bad gstreamer1.0-nice gstreamer1.0-plugins-good gstreamer1.0-plugins-base)
fi
if [ "${#debs[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing Debian packages: ${debs[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 || die "apt-get update failed"
        apt-get install -y -qq "${debs[@]}" >&2 || die "apt-get install ${debs[*]} failed"
    else
        die "missing Debian packages; run as root: apt-get install -y ${debs[*]}"
    fi
fi

# The mediasoup worker's build tools (cargo would run this too; doing it here reports
# problems before a long build starts).
mediasoup-build-kit/prepare

# The demo page, bundled with mediasoup-client from npm (pinned by web/package-lock.json).
if [ -f web/package.json ]; then
    stamp=web/node_modules/.setup-stamp
    if [ ! -f "$stamp" ] || [ web/package-lock.json -nt "$stamp" ]; then
        say "installing the demo page's npm packages"
        (cd web && npm ci --no-audit --no-fund --loglevel=error) >&2
        touch "$stamp"
    fi
    (cd web && npm run --silent build) >&2 || die "building the demo page failed"
fi
if [ "$want_tests" = 1 ] && [ -f tests/browser/package.json ]; then
    stamp=tests/browser/node_modules/.setup-stamp
    if [ ! -f "$stamp" ] || [ tests/browser/package-lock.json -nt "$stamp" ]; then
        say "installing the browser tests' npm packages"
        (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) >&2
        touch "$stamp"
    fi
fi

#!/usr/bin/env bash
# janus.sh — start Janus (Debian package `janus`, 1.1.x) for tests/benchmarks.
#
# Usage: bench/janus.sh CONFDIR WS_PORT RTP_MIN RTP_MAX
#
# Writes a minimal, self-contained Janus configuration into CONFDIR and then
# `exec`s janus in the foreground (the caller may background it, kill it by
# pid, pin it with taskset). The configuration loads ONLY the VideoRoom plugin
# and ONLY the WebSockets transport (plain ws on 127.0.0.1:WS_PORT, API
# subprotocol "janus-protocol"), no admin API, no event handlers, no external
# loggers (stdout only, no colors), no STUN/TURN, no mDNS, IPv4 only, ICE on
# loopback only (single host candidate 127.0.0.1), RTP/RTCP ports in
# RTP_MIN-RTP_MAX.
#
# Loopback ICE needs a tiny LD_PRELOAD shim: Janus 1.1.x skips every interface
# flagged IFF_LOOPBACK when gathering candidates (src/ice.c), and with nothing
# left libnice falls back to ALL non-loopback addresses (IPv6 included). The
# shim (built here with cc, into CONFDIR) clears IFF_LOOPBACK in getifaddrs()
# results so ice_enforce_list="127.0.0.1" yields exactly one host candidate.
#
# Optional environment:
#   JANUS_BIN              janus binary (default: janus from PATH, else /usr/bin/janus)
#   JANUS_LIB_DIR          module dir (default: /usr/lib/<multiarch>/janus)
#   JANUS_DEBUG_LEVEL      0-7 (default 3 = warnings/errors only; 4 = info)
#   JANUS_SESSION_TIMEOUT  seconds without any request before Janus destroys a
#                          session (default 0 = never; sessions still die when
#                          their WebSocket closes because reclaim timeout is 0)
set -euo pipefail

die() { echo "janus.sh: $*" >&2; exit 1; }

[[ $# -eq 4 ]] || die "usage: $0 CONFDIR WS_PORT RTP_MIN RTP_MAX"
CONFDIR=$1 WS_PORT=$2 RTP_MIN=$3 RTP_MAX=$4

is_port() { [[ $1 =~ ^[0-9]+$ ]] && (( $1 >= 1 && $1 <= 65535 )); }
is_port "$WS_PORT" || die "bad WS_PORT: $WS_PORT"
is_port "$RTP_MIN" || die "bad RTP_MIN: $RTP_MIN"
is_port "$RTP_MAX" || die "bad RTP_MAX: $RTP_MAX"
(( RTP_MIN < RTP_MAX )) || die "RTP_MIN ($RTP_MIN) must be < RTP_MAX ($RTP_MAX)"

DEBUG_LEVEL=${JANUS_DEBUG_LEVEL:-3}
SESSION_TIMEOUT=${JANUS_SESSION_TIMEOUT:-0}
[[ $DEBUG_LEVEL =~ ^[0-7]$ ]] || die "bad JANUS_DEBUG_LEVEL: $DEBUG_LEVEL"
[[ $SESSION_TIMEOUT =~ ^[0-9]+$ ]] || die "bad JANUS_SESSION_TIMEOUT: $SESSION_TIMEOUT"

JANUS_BIN=${JANUS_BIN:-$(command -v janus || true)}
[[ -n $JANUS_BIN ]] || JANUS_BIN=/usr/bin/janus
[[ -x $JANUS_BIN ]] || die "janus not found (install it: apt-get install janus)"

if [[ -z ${JANUS_LIB_DIR:-} ]]; then
    for d in /usr/lib/*/janus /usr/lib/janus /usr/local/lib/janus /opt/janus/lib/janus; do
        [[ -e $d/plugins/libjanus_videoroom.so ]] && { JANUS_LIB_DIR=$d; break; }
    done
fi
[[ -n ${JANUS_LIB_DIR:-} ]] || die "cannot find the janus modules directory (set JANUS_LIB_DIR)"
VIDEOROOM=$JANUS_LIB_DIR/plugins/libjanus_videoroom.so
WEBSOCKETS=$JANUS_LIB_DIR/transports/libjanus_websockets.so
[[ -e $VIDEOROOM ]] || die "missing $VIDEOROOM"
[[ -e $WEBSOCKETS ]] || die "missing $WEBSOCKETS (package janus built without websockets?)"

CC=${CC:-cc}
command -v "$CC" >/dev/null 2>&1 \
    || die "a C compiler ($CC) is needed to build the loopback ICE shim (apt-get install gcc)"

mkdir -p "$CONFDIR"
CONFDIR=$(cd "$CONFDIR" && pwd)
[[ $CONFDIR != / ]] || die "CONFDIR must not be /"

# LD_PRELOAD shim: make lo look like an ordinary interface to Janus' ICE
# gathering (see header).
cat > "$CONFDIR/loopback_ice.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stddef.h>
int getifaddrs(struct ifaddrs **ifap) {
	static int (*real)(struct ifaddrs **) = NULL;
	if(real == NULL)
		real = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
	if(real == NULL)
		return -1;
	int rc = real(ifap);
	if(rc == 0)
		for(struct ifaddrs *i = *ifap; i != NULL; i = i->ifa_next)
			i->ifa_flags &= ~IFF_LOOPBACK;
	return rc;
}
C
"$CC" -O2 -shared -fPIC -o "$CONFDIR/loopback_ice.so" "$CONFDIR/loopback_ice.c" -ldl \
    || die "failed to build $CONFDIR/loopback_ice.so"

# Private module folders holding only what we want loaded: Janus loads every
# *.so it finds in plugins/transports/events/loggers folders.
rm -rf "$CONFDIR/plugins" "$CONFDIR/transports" "$CONFDIR/events" "$CONFDIR/loggers"
mkdir -p "$CONFDIR/plugins" "$CONFDIR/transports" "$CONFDIR/events" "$CONFDIR/loggers"
ln -s "$VIDEOROOM" "$CONFDIR/plugins/libjanus_videoroom.so"
ln -s "$WEBSOCKETS" "$CONFDIR/transports/libjanus_websockets.so"

# Belt and braces: also disable every other module by name, in case someone
# points the folders back at the system ones. Names must match the file
# names exactly (Janus compares with strcmp).
list_others() { # dir keep
    local f out=()
    for f in "$1"/*.so; do
        [[ -e $f ]] || continue
        f=${f##*/}
        [[ $f == "$2" ]] || out+=("$f")
    done
    local IFS=,
    echo "${out[*]:-}"
}
DISABLED_PLUGINS=$(list_others "$JANUS_LIB_DIR/plugins" libjanus_videoroom.so)
DISABLED_TRANSPORTS=$(list_others "$JANUS_LIB_DIR/transports" libjanus_websockets.so)
DISABLED_EVENTS=$(list_others "$JANUS_LIB_DIR/events" "")
DISABLED_LOGGERS=$(list_others "$JANUS_LIB_DIR/loggers" "")

cat > "$CONFDIR/janus.jcfg" <<CFG
# Generated by bench/janus.sh — do not edit.
general: {
	configs_folder = "$CONFDIR"
	plugins_folder = "$CONFDIR/plugins"
	transports_folder = "$CONFDIR/transports"
	events_folder = "$CONFDIR/events"
	loggers_folder = "$CONFDIR/loggers"
	log_to_stdout = true
	debug_level = $DEBUG_LEVEL
	debug_timestamps = true
	debug_colors = false
	debug_locks = false
	server_name = "janus-bench"
	interface = "127.0.0.1"		# address used in SDP o=/c= lines
	session_timeout = $SESSION_TIMEOUT
	reclaim_session_timeout = 0
	candidates_timeout = 45
	hide_dependencies = true
	exit_on_dl_error = true
}
certificates: {
	# No cert configured: Janus generates a self-signed ECDSA P-256 one at startup.
	dtls_accept_selfsigned = true
}
media: {
	ipv6 = false
	ipv6_linklocal = false
	rtp_port_range = "$RTP_MIN-$RTP_MAX"
	no_media_timer = 1
}
nat: {
	nice_debug = false
	full_trickle = false
	ice_lite = false
	ice_tcp = false
	ignore_mdns = true
	# Only 127.0.0.1 (works thanks to the LD_PRELOAD shim; without it Janus
	# skips lo and libnice then gathers on every other interface).
	ice_enforce_list = "127.0.0.1"
}
plugins: {
	disable = "$DISABLED_PLUGINS"
}
transports: {
	disable = "$DISABLED_TRANSPORTS"
}
loggers: {
	disable = "$DISABLED_LOGGERS"
}
events: {
	broadcast = false
	disable = "$DISABLED_EVENTS"
}
CFG

cat > "$CONFDIR/janus.transport.websockets.jcfg" <<CFG
# Generated by bench/janus.sh — do not edit.
general: {
	events = false
	json = "compact"
	ws = true
	ws_port = $WS_PORT
	ws_ip = "127.0.0.1"
	wss = false
	ws_logging = "err"
}
admin: {
	admin_ws = false
	admin_wss = false
}
CFG

cat > "$CONFDIR/janus.plugin.videoroom.jcfg" <<CFG
# Generated by bench/janus.sh — do not edit. Rooms are created via the API.
general: {
	events = false
	string_ids = false
}
CFG

export LD_PRELOAD="$CONFDIR/loopback_ice.so${LD_PRELOAD:+:$LD_PRELOAD}"
exec "$JANUS_BIN" --config="$CONFDIR/janus.jcfg" --configs-folder="$CONFDIR" --disable-colors

#!/bin/bash
# What the cluster's relay costs (docs/cluster.md): two hosts of a cluster on this machine
# with their own etcd, release builds, both supervisors (and their nodes) on core 0, the
# loadgen on core 1. Host h2 takes no room of its own (--max-consumers-per-worker 0), so every
# room goes to h1: the same load joins once through the owner (h1) and once through the relay
# host (h2). Prints join and first-frame latency (p50/p99) of each, and h2's CPU per frame it
# relays. Never part of the tests.
#
#   bench/cluster.sh [ROOMS] [RUNS]        (defaults: 20 rooms of 2 publishers, 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOMS=${1:-20}
RUNS=${2:-3}
command -v etcd >/dev/null || { echo "etcd is missing: apt-get install etcd-server" >&2; exit 1; }
cargo build --release -q -p supervisor -p node -p loadgen
dir=$(mktemp -d /tmp/bench-cluster.XXXXXX)
secret=$(openssl rand -hex 32)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
etcd --name bench --data-dir "$dir/etcd" --listen-client-urls http://127.0.0.1:23791 \
    --advertise-client-urls http://127.0.0.1:23791 --listen-peer-urls http://127.0.0.1:23801 \
    --initial-advertise-peer-urls http://127.0.0.1:23801 \
    --initial-cluster bench=http://127.0.0.1:23801 >"$dir/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "ready to serve" "$dir/etcd.log" && break; sleep 0.1; done
start_host() { # id port extra-args…
    local id=$1 port=$2
    shift 2
    ETCD_ENDPOINTS=http://127.0.0.1:23791 HOST_ID=$id CLUSTER_ADDR=127.0.0.1:$((port + 100)) \
        CLUSTER_SECRET=$secret taskset -c 0 target/release/supervisor --port "$port" \
        --bind 127.0.0.1 --joins-per-minute-per-ip 0 "$@" >"$dir/$id.log" 2>&1 &
    pids+=($!)
}
start_host h1 8041 --rtc-min-port 41000 --rtc-max-port 44999
start_host h2 8042 --rtc-min-port 45000 --rtc-max-port 48999 --max-consumers-per-worker 0
h2_pid=${pids[2]}
for id in h1 h2; do
    for _ in $(seq 200); do grep -q "cluster link up" "$dir/$id.log" && break; sleep 0.1; done
done
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
frames() { curl -s "http://127.0.0.1:8042/metrics" | awk '/^sfu_relayed_frames_total / {print $2}'; }
printf '| run | through | join p50 ms | join p99 ms | first frame p50 ms | first frame p99 ms | errors |\n|---|---|---|---|---|---|---|\n'
relay_ticks=0
relay_frames=0
for run in $(seq "$RUNS"); do
    for through in owner relay; do
        port=8041
        [ "$through" = relay ] && port=8042
        ticks0=$(cpu_ticks "$h2_pid")
        frames0=$(frames)
        taskset -c 1 target/release/loadgen --url "ws://127.0.0.1:$port/ws" --rooms "$ROOMS" \
            --publishers 2 --ramp 50 --duration 4 --room-prefix "$through-$run" --json 2>/dev/null |
            python3 -c '
import json, sys
d = json.load(sys.stdin)
j = d.get("join_ms") or {}
f = d.get("first_frame_ms") or {}
print("| %s | %s | %.1f | %.1f | %.1f | %.1f | %s |" % (sys.argv[1], sys.argv[2], j.get("p50", 0),
      j.get("p99", 0), f.get("p50", 0), f.get("p99", 0), d.get("errors") or "none"))' "$run" "$through"
        if [ "$through" = relay ]; then
            relay_ticks=$((relay_ticks + $(cpu_ticks "$h2_pid") - ticks0))
            relay_frames=$((relay_frames + $(frames) - frames0))
        fi
        sleep 3
    done
done
hz=$(getconf CLK_TCK)
python3 -c 'import sys; t, f, hz = map(float, sys.argv[1:]); print("\nrelay host (h2) supervisor CPU: %.0f ms for %d relayed frames = %.1f µs per frame" % (t * 1000 / hz, f, t * 1e6 / hz / max(f, 1)))' \
    "$relay_ticks" "$relay_frames" "$hz"

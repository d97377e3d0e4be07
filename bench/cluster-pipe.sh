#!/bin/bash
# What a room spanning two hosts costs (docs/cluster.md, "Rooms across hosts"): two hosts of a
# cluster on this machine with their own etcd, release builds, both supervisors (and their
# nodes) on core 0, the loadgen on core 1. Each host has one node of one worker, and a worker
# counts as full at CAP consumers: the same load (ROOMS rooms of PUBLISHERS publishers, all
# signaling to h1) runs once with a cap no room reaches (every room on h1) and once with CAP
# (each room spans both hosts, SRTP pipes between the hosts' nodes), then spanning again with
# LOSS % of the packets between the two hosts' pipe addresses dropped (iptables' statistic
# match: this kernel has no netem; each host's pipes have their own loopback address, so
# clients' media is untouched). Prints receivers' loss and first-frame latency, and the
# nodes' CPU. Never part of the tests; removes its iptables rules.
#
#   bench/cluster-pipe.sh [ROOMS] [PUBLISHERS] [CAP] [LOSS...]   (defaults: 1 4 16 1 5)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOMS=${1:-1}
PUBLISHERS=${2:-4}
CAP=${3:-16}
shift $(($# < 3 ? $# : 3))
LOSSES=("$@")
[ ${#LOSSES[@]} -gt 0 ] || LOSSES=(1 5)
command -v etcd >/dev/null || { echo "etcd is missing: apt-get install etcd-server" >&2; exit 1; }
command -v iptables-legacy >/dev/null || { echo "iptables-legacy is missing: apt-get install iptables" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (iptables)" >&2; exit 1; }
cargo build --release -q -p supervisor -p node -p loadgen -p monitor
dir=$(mktemp -d /tmp/bench-cluster-pipe.XXXXXX)
secret=$(openssl rand -hex 32)
token=bench-monitor-token-0123456789abcdef
pids=()
rules=()
drop_rules() {
    for rule in "${rules[@]}"; do
        # shellcheck disable=SC2086
        iptables-legacy -D OUTPUT $rule 2>/dev/null || true
    done
    rules=()
}
stop_hosts() {
    [ ${#pids[@]} -gt 1 ] && kill "${pids[@]:1}" 2>/dev/null || true
    sleep 1
    pids=("${pids[0]}")
}
cleanup() { drop_rules; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
etcd --name bench --data-dir "$dir/etcd" --listen-client-urls http://127.0.0.1:23792 \
    --advertise-client-urls http://127.0.0.1:23792 --listen-peer-urls http://127.0.0.1:23802 \
    --initial-advertise-peer-urls http://127.0.0.1:23802 \
    --initial-cluster bench=http://127.0.0.1:23802 >"$dir/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "ready to serve" "$dir/etcd.log" && break; sleep 0.1; done
start_host() { # id port pipe-ip cap
    local id=$1 port=$2 pipe=$3 cap=$4
    ETCD_ENDPOINTS=http://127.0.0.1:23792 HOST_ID=$id CLUSTER_ADDR=127.0.0.1:$((port + 100)) \
        CLUSTER_SECRET=$secret MONITOR_TOKEN=$token taskset -c 0 target/release/supervisor \
        --port "$port" --bind 127.0.0.1 --joins-per-minute-per-ip 0 --pipe-ip "$pipe" \
        --nodes 1 --max-nodes 1 --workers-per-node 1 --max-consumers-per-worker "$cap" \
        >"$dir/$id-$cap.log" 2>&1 &
    pids+=($!)
}
start_cluster() { # cap
    start_host h1 8051 127.0.0.2 "$1"
    start_host h2 8052 127.0.0.3 "$1"
    for id in h1 h2; do
        for _ in $(seq 200); do grep -q "cluster link up" "$dir/$id-$1.log" && break; sleep 0.1; done
    done
    sleep 2 # each host's record lists its node
}
node_ticks() { # CPU ticks of every node process
    local total=0
    for pid in $(pgrep -x node); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}
hz=$(getconf CLK_TCK)
printf '| run | rooms on | pipe loss | streams | receivers loss %% | first frame p50 ms | first frame p99 ms | nodes CPU ms | errors |\n|---|---|---|---|---|---|---|---|---|\n'
run() { # label loss prefix
    local label=$1 loss=$2 prefix=$3 t0 t1
    t0=$(node_ticks)
    taskset -c 1 target/release/loadgen --url "ws://127.0.0.1:8051/ws" --rooms "$ROOMS" \
        --publishers "$PUBLISHERS" --ramp 10 --duration 6 --room-prefix "$prefix" --json \
        2>"$dir/loadgen.err" >"$dir/out.json" &
    local loadgen=$!
    # Where the first room's peers are, while they are in it.
    sleep $((ROOMS * PUBLISHERS / 10 + 3))
    local spread
    spread=$(target/release/monitor --url ws://127.0.0.1:8051/monitor --token "$token" --json room "$prefix-0" 2>/dev/null |
        python3 -c 'import json,sys
try:
    d = json.load(sys.stdin)
    print(" + ".join("%s:%d" % (r.get("host", "?"), r["peers"]) for r in d["routers"]))
except Exception:
    print("?")')
    wait "$loadgen" || true
    t1=$(node_ticks)
    [ -s "$dir/out.json" ] || { echo "loadgen failed:" >&2; cat "$dir/loadgen.err" >&2; return; }
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
f = d.get("first_frame_ms") or {}
print("| %s | %s | %s | %d/%d | %.2f | %.1f | %.1f | %.0f | %s |" % (sys.argv[2], sys.argv[3], sys.argv[4],
      d.get("streams_received", 0), d.get("streams_expected", 0), d.get("loss_pct", 0),
      f.get("p50", 0), f.get("p99", 0), float(sys.argv[5]), d.get("errors") or "none"))' \
        "$dir/out.json" "$label" "$spread" "$loss %" "$(python3 -c "print(($t1 - $t0) * 1000 / $hz)")"
}
start_cluster 500
run "one host" 0 one
stop_hosts
start_cluster "$CAP"
run "spanning" 0 span
for loss in "${LOSSES[@]}"; do
    p=$(python3 -c "print($loss / 100)")
    for pair in "127.0.0.2 127.0.0.3" "127.0.0.3 127.0.0.2"; do
        set -- $pair
        rule="-p udp -s $1 -d $2 -m statistic --mode random --probability $p -j DROP"
        # shellcheck disable=SC2086
        iptables-legacy -I OUTPUT $rule
        rules+=("$rule")
    done
    sleep 3 # the hosts' records show their load again
    run "spanning" "$loss" "loss$loss"
    echo "  (pipe packets dropped at $loss %: $(iptables-legacy -L OUTPUT -v -x -n | awk '/statistic/ {n += $1} END {print n + 0}'))"
    drop_rules
done

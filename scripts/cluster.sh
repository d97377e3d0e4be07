#!/usr/bin/env bash
# A local cluster to try (docs/cluster.md): N hosts, each a network namespace with its own
# address on a bridge (10.77.0.1 … 10.77.0.N), one supervisor per host in cluster mode, and
# an etcd of the cluster's own on the bridge (10.77.0.254). Prints the URLs to open, then
# runs until Ctrl-C, when it removes the namespaces, the bridge and etcd's data.
#   sudo scripts/cluster.sh 3             three hosts
#   sudo scripts/cluster.sh down          removes what a killed run left behind
# Needs root (namespaces), etcd (Debian's etcd-server: scripts/setup.sh --tests) and a build
# (it runs cargo build first). Each host's log: /tmp/sfu-cluster/hN.log. Extra supervisor
# settings pass through the environment (e.g. WORKERS_PER_NODE=1 MAX_NODES=1); SFU_BIN=dir
# runs the supervisor, node and monitor found there instead of building them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { printf 'cluster: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'cluster: %s\n' "$*" >&2; }

BRIDGE=sfubr0
NET=10.77.0
ETCD_IP=$NET.254
RUN_DIR=/tmp/sfu-cluster
SECRET_FILE=$RUN_DIR/cluster-secret
MONITOR_TOKEN_FILE=$RUN_DIR/monitor-token

down() {
    # The veth pairs go first, explicitly: one whose namespace was deleted disappears only
    # when the kernel gets round to it, and a quick restart would find its name taken.
    for link in $(ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^veth-h[0-9]+@/ {split($2, a, "@"); print a[1]}'); do
        ip link delete "$link" 2>/dev/null || true
    done
    for ns in $(ip netns list 2>/dev/null | awk '/^sfu-h[0-9]+/ {print $1}'); do
        # A supervisor drains its host on SIGTERM; a second one stops it at once (the whole
        # demo cluster goes, there is nowhere to move to).
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        sleep 0.2
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns delete "$ns" 2>/dev/null || true
    done
    [ -f "$RUN_DIR/etcd.pid" ] && kill "$(cat "$RUN_DIR/etcd.pid")" 2>/dev/null || true
    ip link delete "$BRIDGE" 2>/dev/null || true
    rm -rf "$RUN_DIR/etcd"
}

[ "$(id -u)" = 0 ] || die "needs root (network namespaces): sudo $0 $*"
if [ "${1:-}" = down ]; then
    down
    say "removed"
    exit 0
fi
n=${1:-}
[[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 20 ] || die "usage: $0 N (1 to 20 hosts) | down"
command -v etcd >/dev/null || die "etcd is missing: apt-get install etcd-server (or scripts/setup.sh --tests)"

if [ -n "${SFU_BIN:-}" ]; then
    bin=$(cd "$SFU_BIN" && pwd)
else
    scripts/setup.sh
    cargo build --workspace --all-targets --locked
    bin=$PWD/target/debug
fi
[ -x "$bin/supervisor" ] && [ -x "$bin/node" ] || die "no supervisor and node in $bin"

down
mkdir -p "$RUN_DIR"
[ -s "$SECRET_FILE" ] || openssl rand -hex 32 > "$SECRET_FILE"
[ -s "$MONITOR_TOKEN_FILE" ] || openssl rand -hex 32 > "$MONITOR_TOKEN_FILE"
chmod 600 "$SECRET_FILE" "$MONITOR_TOKEN_FILE"
trap 'say "stopping"; down' EXIT
trap 'exit 130' INT TERM

ip link add "$BRIDGE" type bridge
ip addr add "$ETCD_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
etcd --name sfu-cluster --data-dir "$RUN_DIR/etcd" \
    --listen-client-urls "http://$ETCD_IP:2379" --advertise-client-urls "http://$ETCD_IP:2379" \
    --listen-peer-urls "http://$ETCD_IP:2380" --initial-advertise-peer-urls "http://$ETCD_IP:2380" \
    --initial-cluster "sfu-cluster=http://$ETCD_IP:2380" --auto-compaction-retention=1h \
    > "$RUN_DIR/etcd.log" 2>&1 &
echo $! > "$RUN_DIR/etcd.pid"
for _ in $(seq 100); do grep -q "ready to serve client requests" "$RUN_DIR/etcd.log" && break; sleep 0.1; done
grep -q "ready to serve client requests" "$RUN_DIR/etcd.log" || die "etcd did not start: $RUN_DIR/etcd.log"

origins=()
for i in $(seq "$n"); do
    ns=sfu-h$i
    ip=$NET.$i
    ip netns add "$ns"
    ip link add "veth-h$i" type veth peer name eth0 netns "$ns"
    ip link set "veth-h$i" master "$BRIDGE" up
    ip -n "$ns" addr add "$ip/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip netns exec "$ns" env \
        ETCD_ENDPOINTS="http://$ETCD_IP:2379" HOST_ID="h$i" CLUSTER_ADDR="$ip:7000" \
        CLUSTER_SECRET_FILE="$SECRET_FILE" MONITOR_TOKEN_FILE="$MONITOR_TOKEN_FILE" \
        BIND=0.0.0.0 PUBLIC_IP="$ip" PIPE_IP="$ip" PUBLIC_URL="ws://$ip:8000/ws" \
        "$bin/supervisor" > "$RUN_DIR/h$i.log" 2>&1 &
    origins+=("http://$ip:8000")
done
for i in $(seq "$n"); do
    for _ in $(seq 300); do grep -q "joined the cluster" "$RUN_DIR/h$i.log" && break; sleep 0.1; done
    grep -q "joined the cluster" "$RUN_DIR/h$i.log" || die "host h$i did not join the cluster: $RUN_DIR/h$i.log"
done

joined=$(IFS=,; echo "${origins[*]}")
cat <<EOT

A cluster of $n hosts is running (etcd at http://$ETCD_IP:2379, logs in $RUN_DIR).
Open any host's page; every host serves every room:
$(for o in "${origins[@]}"; do echo "  $o"; done)
These are plain-HTTP pages on addresses other than localhost: let the browser use the camera
on them with
  chromium --user-data-dir=/tmp/sfu-cluster/chromium --unsafely-treat-insecure-origin-as-secure=$joined
The hosts:
  ip netns exec sfu-h1 $bin/monitor --url ws://127.0.0.1:8000/monitor --token \$(cat $MONITOR_TOKEN_FILE) hosts
(the monitor sends its token over plain ws:// only on loopback: each host listens on its own
namespace's 127.0.0.1 too)
Ctrl-C stops the cluster and removes the namespaces.
EOT
wait

#!/usr/bin/env bash
# The node's CPU for the same call with no monitor, with a quality subscription
# (`monitor events --quality`, sampling every 2 s) and with a `room` query every 2 s (what
# `monitor watch` asks): what on-demand media statistics cost. Release builds; the SFU on
# core 0, the loadgen and monitor on core 1.
#
#   bench/stats_cost.sh [MODE...]     MODE: none, quality, room (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8300}
# The monitor API takes tokens of 32 characters or more.
TOKEN=stats-cost-bench-monitor-token-0123456789
PUBLISHERS=${PUBLISHERS:-4}
SUBSCRIBERS=${SUBSCRIBERS:-20}
WARMUP=${WARMUP:-10}
WINDOW=${WINDOW:-20}
modes=("$@")
[ ${#modes[@]} -eq 0 ] && modes=(none quality room)
# BIN: where supervisor, node and monitor are (another build to compare with).
BIN=${BIN:-target/release}
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p supervisor -p node -p loadgen -p monitor
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
printf '| mode | consumers | node CPU %% of a core | supervisor CPU %% | sfu_stats_collections_total |\n|---|---|---|---|---|\n'
for mode in "${modes[@]}"; do
    taskset -c 0 "$BIN/supervisor" --node-binary "$BIN/node" --port "$PORT" --bind 127.0.0.1 --monitor-token "$TOKEN" \
        --joins-per-minute-per-ip 0 --rtc-min-port 42000 --rtc-max-port 44000 \
        >/tmp/stats-cost-supervisor.log 2>&1 &
    sup=$!
    for _ in $(seq 100); do grep -q "listening on" /tmp/stats-cost-supervisor.log && break; sleep 0.1; done
    node=$(pgrep -P "$sup" node | head -1)
    taskset -c 1 target/release/loadgen --url "ws://127.0.0.1:$PORT/ws" --rooms 1 --room-prefix cost \
        --publishers "$PUBLISHERS" --subscribers "$SUBSCRIBERS" --duration $((WARMUP + WINDOW + 5)) \
        >/dev/null 2>&1 &
    load=$!
    sleep "$WARMUP"
    room=$("$BIN/monitor" --url "ws://127.0.0.1:$PORT/monitor" --token "$TOKEN" --json rooms |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[0]["room"], r[0]["consumers"])')
    name=${room% *}; consumers=${room#* }
    watcher=
    case $mode in
        quality) taskset -c 1 "$BIN/monitor" --url "ws://127.0.0.1:$PORT/monitor" --token "$TOKEN" \
                     events --room "$name" --quality >/dev/null 2>&1 & watcher=$! ;;
        room) (while sleep 2; do taskset -c 1 "$BIN/monitor" --url "ws://127.0.0.1:$PORT/monitor" \
                   --token "$TOKEN" room "$name" >/dev/null 2>&1; done) & watcher=$! ;;
    esac
    n0=$(ticks "$node"); s0=$(ticks "$sup")
    sleep "$WINDOW"
    n1=$(ticks "$node"); s1=$(ticks "$sup")
    collections=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^sfu_stats_collections_total/ {print $2}')
    [ -n "$watcher" ] && { kill "$watcher" 2>/dev/null; pkill -P "$watcher" 2>/dev/null || true; }
    wait "$load" 2>/dev/null || true
    kill "$sup"; wait "$sup" 2>/dev/null || true
    awk -v m="$mode" -v c="$consumers" -v n=$((n1 - n0)) -v s=$((s1 - s0)) -v hz="$hz" -v w="$WINDOW" \
        -v k="${collections:-n/a}" 'BEGIN { printf "| %s | %s | %.1f | %.1f | %s |\n", m, c, 100*n/hz/w, 100*s/hz/w, k }'
done

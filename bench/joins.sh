#!/bin/bash
# Join latency when many clients join many rooms at once (issue #12's measure): a fresh
# release supervisor with one node pinned to core 0, the loadgen on core 1; RUNS runs of
# CLIENTS clients joining CLIENTS rooms at the same instant (--ramp 100000), no media: clients
# that only join, then clients that also open their send and receive transports (ICE, DTLS)
# as they would to publish. Prints the join answer latency (p50/p99/max, ms) of each run and
# the loadgen's CPU: near 100 %, the run measures the loadgen more than the SFU.
# Never part of the tests.
#
#   bench/joins.sh [CLIENTS] [RUNS]        (defaults: 200 clients, 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-200}
RUNS=${2:-3}
PORT=${PORT:-8031}
cargo build --release -q -p supervisor -p node -p loadgen
taskset -c 0 target/release/supervisor --port "$PORT" --bind 127.0.0.1 \
    --rtc-min-port 41000 --rtc-max-port 49000 --joins-per-minute-per-ip 0 >/tmp/bench-joins-supervisor.log 2>&1 &
SUPERVISOR=$!
trap 'kill $SUPERVISOR 2>/dev/null; wait $SUPERVISOR 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
done
printf '| clients | run | clients → rooms | join p50 ms | join p99 ms | max ms | loadgen CPU %% | errors |\n|---|---|---|---|---|---|---|---|\n'
for mode in "join only" "with transports"; do
  extra=()
  [ "$mode" = "join only" ] && extra=(--no-transports)
  for run in $(seq "$RUNS"); do
    taskset -c 1 target/release/loadgen --url "ws://127.0.0.1:$PORT/ws" --rooms "$CLIENTS" \
        --publishers 1 --idle "${extra[@]}" --ramp 100000 --duration 2 --json 2>/dev/null |
        python3 -c '
import json, sys
d = json.load(sys.stdin)
j = d["join_ms"] or {}
print("| %s | %s | %d → %d | %.0f | %.0f | %.0f | %.0f | %s |" % (sys.argv[2], sys.argv[1],
      d["peers"], d["peers"], j.get("p50", 0), j.get("p99", 0), j.get("max", 0),
      d.get("loadgen_cpu_pct", 0), d.get("errors") or "none"))' "$run" "$mode"
    sleep 2
  done
done

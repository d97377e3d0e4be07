#!/usr/bin/env bash
# Benchmarks of the SFU side by side with Janus (Debian's janus 1.1.2):
#   bench/run.sh [--quick] [--no-janus] [audio|fanout|meetings|join-storm|idle|spanning|last-n|webinar|whip|ice-paths|recording …]
# Builds release binaries, then runs each scenario against our SFU and against Janus, one
# after the other, the SFU under test pinned to core 0 and the loadgen to core 1, and writes
# markdown tables, the raw JSON and a chart under bench/results/. Never part of the tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh --tests
[ "$(nproc)" -ge 2 ] || { echo "bench: needs 2 cores (SFU and loadgen apart)" >&2; exit 1; }
cargo build --release --locked -p supervisor -p node -p recorder -p monitor -p loadgen -p bench
# A fan-out of 1000 needs a few thousand sockets in the loadgen and in Janus.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec target/release/bench "$@"

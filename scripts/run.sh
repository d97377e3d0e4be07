#!/usr/bin/env bash
# Runs the SFU on this machine: installs or builds what it needs, then starts the
# supervisor (http://127.0.0.1:8000 by default; every `supervisor --help` flag and
# variable, such as TLS_MODE=1 or PUBLIC_IP, passes through).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
# Only what runs: the supervisor, the node and recorder it spawns, and the monitor (the test suite builds
# every test and benchmark on its own, scripts/test.sh).
cargo build --locked --bin supervisor --bin node --bin monitor --bin recorder
exec target/debug/supervisor "$@"

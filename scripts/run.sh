#!/usr/bin/env bash
# Runs the SFU on this machine: installs or builds what it needs, then starts the
# supervisor (http://127.0.0.1:8000 by default; every `supervisor --help` flag and
# variable, such as TLS_MODE=1 or PUBLIC_IP, passes through).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
# --all-targets: the same feature set as the test suite, so the two share one build.
cargo build --workspace --all-targets --locked
exec target/debug/supervisor "$@"

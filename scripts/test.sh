#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing, then checks format
# and lints, builds, and runs every test (unit, property, mediasoup smoke, integration with
# real supervisor and node processes, browser). Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "setup"
scripts/setup.sh --tests
step "cargo fmt --check"
cargo fmt --all -- --check
# One feature set for every step below (all targets), so the mediasoup worker is built once.
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo build"
cargo build --workspace --all-targets --locked
step "demo page: pure functions (node --test)"
(cd web && node --test test/)
step "cargo test"
cargo test --workspace --locked -- --test-threads=2

#!/usr/bin/env bash
# Soak: the leak test's visits (join → transports → produce → consume → leave, one after the
# other, against a room whose host stays) for SOAK_SECS seconds (default: an hour) on release
# builds, printing the supervisor's and the node's resident memory and open descriptors every
# minute, and failing if they did not come back to their level after the warm-up.
#
#   scripts/soak.sh            # an hour
#   SOAK_SECS=600 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_SECS="${SOAK_SECS:-3600}"
echo "soak: ${SOAK_SECS} s of visits; a table row a minute" >&2
cargo build --release -q -p supervisor -p node
exec cargo test --release -p supervisor --test integration \
    leaks::two_thousand_visits_leave_memory_and_descriptors_where_they_were -- --nocapture

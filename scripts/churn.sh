#!/usr/bin/env bash
# The churn soak (issue 15), long version: 25 `safe node run` processes on
# 127.0.0.1, killed with kill -9, restarted and replaced for 10 minutes
# while clients write and read back; then every chunk and record must be
# back to K live copies within 60 s. CI runs the same test for 2 minutes.
#
#   scripts/churn.sh                  # 600 s, 25 nodes
#   SAFE_CHURN_SECS=1800 SAFE_CHURN_NODES=40 scripts/churn.sh
#   SAFE_CHURN_SEED=1234 scripts/churn.sh   # repeat a run's choices
set -euo pipefail
cd "$(dirname "$0")/.."
export SAFE_CHURN_SECS=${SAFE_CHURN_SECS:-600}
export SAFE_CHURN_NODES=${SAFE_CHURN_NODES:-25}
echo "== churn soak: $SAFE_CHURN_NODES nodes, $SAFE_CHURN_SECS s ($(nproc) cores, $(date -u +%F))"
cargo test --release --locked -p safe-cli --test churn -- --nocapture

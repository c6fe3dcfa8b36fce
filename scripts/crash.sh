#!/usr/bin/env bash
# Crash consistency of the node store, the long run (issue 15): one
# `safe node run` takes chunks and record writes as fast as a client can
# send them and is killed with SIGKILL at a random moment, ROUNDS times;
# after each restart every acknowledged write must be there, byte for byte
# (crates/cli/tests/crash.rs; `cargo test` runs 8 rounds).
#
# Usage: scripts/crash.sh [ROUNDS]   (default 200; SAFE_CRASH_SEED=N replays
# a run: its seed is printed first). The node's directory is a temporary
# one under TMPDIR: about 3 GB per 100 rounds, removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-200}
cargo build --release --locked -p safe-cli --tests
start=$(date +%s)
SAFE_CRASH_ROUNDS=$ROUNDS cargo test --release --locked -p safe-cli --test crash -- --nocapture
echo "crash: $ROUNDS rounds in $(( $(date +%s) - start )) s on $(nproc) cores"

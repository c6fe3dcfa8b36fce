#!/usr/bin/env bash
# Coverage-guided fuzzing of everything a node or client decodes from the
# network or disk (targets in fuzz/, bodies in safe_testkit::fuzzing):
# each target runs RUNS executions (default 10 million) from its corpus in
# fuzz/corpus/<target>/, which grows with what the fuzzer finds (commit
# it: `cargo test` replays it, tests/fuzz_corpora.rs). A crash or timeout
# leaves its input in fuzz/artifacts/<target>/ and fails the script.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and runs on stable Rust
# with RUSTC_BOOTSTRAP=1 (no other toolchain is needed).
# Usage: scripts/fuzz.sh [TARGET...]   (RUNS=N to change the count)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
RUNS=${RUNS:-10000000}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(wire_request wire_response record manifest root url relay letter)
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t: $RUNS runs"
    start=$(date +%s)
    cargo fuzz run -O "$t" "corpus/$t" -- -runs="$RUNS" -max_len=65536 -timeout=10 \
        -rss_limit_mb=1024 -print_final_stats=1 2>&1 \
        | grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:|Done|ERROR|crash|timeout" | tail -4
    echo "$t: $(( $(date +%s) - start )) s, corpus $(ls "corpus/$t" | wc -l) inputs"
done

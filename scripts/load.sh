#!/usr/bin/env bash
# Load (issue 15): 100 clients at once for 5 minutes against 10 node
# processes on 127.0.0.1 (K = 5): mixed small (≤ 64 KiB) and large
# (1–3 MiB, 2% of operations) puts, gets checked byte for byte, and record updates. Prints
# latency per operation (p50, p99, max), failures, and every node's RSS
# and queue depths (safe_fetch_queue, safe_inbound_bytes from /metrics)
# every 30 s, so memory can be seen to stay flat.
#
#   scripts/load.sh [CLIENTS [SECONDS]]      # default 100 300
#   SAFE_LOAD_NODE_ARGS="--cache-size 0" scripts/load.sh   # extra node flags
#   SAFE_LOAD_DISTINCT=2000 scripts/load.sh 100 3600   # puts from a fixed pool:
#       the stores stop growing, so a long run can show flat memory
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-100}
SECS=${2:-300}
NODES=10
# Two builds: with --example, one command would build only the example,
# and leave an old `safe` binary in place.
cargo build --release --locked -p safe-cli --bin safe
cargo build --release --locked -p safe-testkit --example load
BIN=target/release/safe
WORK=$(mktemp -d /tmp/safe-load.XXXXXX)
declare -a PIDS
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

start_node() {
    local i=$1; shift
    local args=(node run --dir "$WORK/n$i" --listen /ip4/127.0.0.1/tcp/0 --metrics 127.0.0.1:0 --id-difficulty 0)
    for p in "$@"; do args+=(--peer "$p"); done
    local extra=()
    read -ra extra <<< "${SAFE_LOAD_NODE_ARGS:-}"
    args+=("${extra[@]}")
    "$BIN" "${args[@]}" > "$WORK/n$i.log" 2>&1 &
    PIDS[$i]=$!
    for _ in $(seq 200); do grep -q "^metrics on" "$WORK/n$i.log" && return 0; sleep 0.05; done
    echo "node $i did not start"; cat "$WORK/n$i.log"; exit 1
}
addr_of() { grep -m1 -o "/ip4/127.0.0.1/tcp/[^ ]*" "$WORK/n$1.log"; }
metrics_of() { grep -m1 -o "127.0.0.1:[0-9]*" <(grep "^metrics on" "$WORK/n$1.log"); }
metric() { curl -s "http://$(metrics_of "$1")/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
sample() {
    local rss="" cache="" fq=0 ib=0
    for i in $(seq 0 $((NODES - 1))); do
        rss+="$(ps -o rss= -p "${PIDS[$i]}" | awk '{printf "%d", $1/1024}') "
        cache+="$(( $(metric "$i" safe_cache_bytes) >> 20 )) "
        fq=$(( $(metric "$i" safe_fetch_queue) > fq ? $(metric "$i" safe_fetch_queue) : fq ))
        ib=$(( $(metric "$i" safe_inbound_bytes) > ib ? $(metric "$i" safe_inbound_bytes) : ib ))
    done
    echo "t=$1 s  node RSS MiB: $rss  cache MiB: $cache  max fetch queue $fq  max inbound bytes $ib"
}

start_node 0
SEED=$(addr_of 0)
for i in $(seq 1 $((NODES - 1))); do start_node "$i" "$SEED"; done
sleep 3
PEERS=$(for i in 0 1 2; do addr_of "$i"; done | paste -sd,)
echo "== $NODES nodes, $CLIENTS clients, $SECS s ($(nproc) cores, $(date -u +%F))"
sample 0
SAFE_PEERS=$PEERS SAFE_LOAD_DISTINCT=${SAFE_LOAD_DISTINCT:-} target/release/examples/load "$CLIENTS" "$SECS" > "$WORK/load.out" 2>&1 &
LOAD=$!
t=0
while kill -0 "$LOAD" 2>/dev/null; do
    sleep 30; t=$((t + 30))
    kill -0 "$LOAD" 2>/dev/null && sample "$t"
done
rc=0; wait "$LOAD" || rc=$?
cat "$WORK/load.out"
sample end
exit "$rc"

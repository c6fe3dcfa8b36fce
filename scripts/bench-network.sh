#!/usr/bin/env bash
# Network benchmark and kill -9 check with real processes, all on 127.0.0.1:
# 10 `safe node run` processes (K = 5), a 1 GiB file put and got through the
# `safe` client, node memory idle and after storing it, then two nodes killed
# with kill -9 at once: the file must still read back identical, every
# chunk must return to 5 copies on the live nodes, and the killed nodes,
# restarted from their directories, must still hold what they held.
#
# Usage: cargo build --release && scripts/bench-network.sh [FILE]
# (FILE defaults to 1 GiB of random bytes in the work directory.)
# Every process it starts is stopped on exit.
set -euo pipefail

BIN=${SAFE_BIN:-target/release/safe}
NODES=${NODES:-10}
WORK=$(mktemp -d /tmp/safe-bench.XXXXXX)
declare -a PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

FILE=${1:-$WORK/file.bin}
if [ ! -e "$FILE" ]; then head -c $((1 << 30)) /dev/urandom > "$FILE"; fi
SIZE=$(stat -c %s "$FILE")

start_node() { # index, peer...
    local i=$1; shift
    local args=(node run --dir "$WORK/n$i" --listen /ip4/127.0.0.1/tcp/0 --listen /ip4/127.0.0.1/udp/0/quic-v1 --metrics 127.0.0.1:0)
    for p in "$@"; do args+=(--peer "$p"); done
    "$BIN" "${args[@]}" > "$WORK/n$i.log" 2>&1 &
    PIDS[$i]=$!
    for _ in $(seq 100); do grep -q "listening on .*/tcp/" "$WORK/n$i.log" && return 0; sleep 0.05; done
    echo "node $i did not start"; cat "$WORK/n$i.log"; exit 1
}
addr_of() { grep -m1 -o "/ip4/127.0.0.1/tcp/[^ ]*" "$WORK/n$1.log"; }
rss_mib() { ps -o rss= -p "$1" | awk '{printf "%.1f", $1/1024}'; }
rss_all() { for i in $(seq 0 $((NODES - 1))); do [ -n "${PIDS[$i]:-}" ] && kill -0 "${PIDS[$i]}" 2>/dev/null && printf "%s " "$(rss_mib "${PIDS[$i]}")"; done; echo; }
# Histogram "copies:chunks" over the given node indexes.
copies() {
    for i in "$@"; do "$BIN" node chunks --dir "$WORK/n$i"; done | sort | uniq -c | awk '{print $1}' | sort -n | uniq -c | awk '{printf "%s copies: %s chunks; ", $2, $1}'
    echo
}

t0=$(date +%s.%N)
start_node 0
SEED=$(addr_of 0)
for i in $(seq 1 $((NODES - 1))); do start_node "$i" "$SEED"; done
t1=$(date +%s.%N)
echo "started $NODES node processes in $(echo "$t1 - $t0" | bc) s"
sleep 5
echo "idle RSS MiB per node: $(rss_all)"

export SAFE_PEERS=$SEED SAFE_HOME=$WORK/home
/usr/bin/time -f "%e %M" -o "$WORK/put.time" "$BIN" put "$FILE" --json > "$WORK/put.json"
read -r put_s put_kb < "$WORK/put.time"
ADDR=$(sed 's/.*"address":"\([^"]*\)".*/\1/' "$WORK/put.json")
SENT=$(sed 's/.*"sent_bytes":\([0-9]*\).*/\1/' "$WORK/put.json")
echo "put: $SIZE bytes in $put_s s = $(echo "$SIZE / $put_s / 1000000" | bc) MB/s; client peak RSS $((put_kb / 1024)) MiB; sent/size = $(echo "scale=4; $SENT / $SIZE" | bc)"
/usr/bin/time -f "%e %M" -o "$WORK/get.time" "$BIN" get "$ADDR" -o "$WORK/out.bin"
read -r get_s get_kb < "$WORK/get.time"
cmp "$FILE" "$WORK/out.bin"
echo "get: $get_s s = $(echo "$SIZE / $get_s / 1000000" | bc) MB/s; client peak RSS $((get_kb / 1024)) MiB; identical"
sleep 3
echo "RSS MiB per node after storing: $(rss_all)"
echo "copies: $(copies $(seq 0 $((NODES - 1))))"
# Optionally store a second file: node memory must not grow with chunks.
if [ -n "${EXTRA_FILE:-}" ]; then
    "$BIN" put "$EXTRA_FILE" > /dev/null
    sleep 3
    echo "RSS MiB per node after storing $EXTRA_FILE too: $(rss_all)"
fi

# kill -9 two nodes at once.
declare -A before
for v in 3 7; do before[$v]=$("$BIN" node chunks --dir "$WORK/n$v" | wc -l); kill -9 "${PIDS[$v]}"; done
PIDS[3]=""; PIDS[7]=""
rm -f "$WORK/out.bin"
"$BIN" get "$ADDR" -o "$WORK/out.bin" && cmp "$FILE" "$WORK/out.bin" && echo "after kill -9 of 2 nodes: get identical"
live=(0 1 2 4 5 6 8 9)
t_kill=$(date +%s)
for _ in $(seq 60); do
    h=$(copies "${live[@]}")
    if [[ "$h" =~ ^"5 copies: "[0-9]+" chunks; "$ ]]; then break; fi
    sleep 1
done
echo "after $(( $(date +%s) - t_kill )) s on the 8 live nodes: $h"

# Restart them from their directories: nothing they held is lost.
for v in 3 7; do
    start_node "$v" "$SEED"
    n=$("$BIN" node chunks --dir "$WORK/n$v" | wc -l)
    echo "node $v restarted: held ${before[$v]} records before kill -9, has $n"
done
sleep 3
rm -f "$WORK/out.bin"
"$BIN" get "$ADDR" -o "$WORK/out.bin" && cmp "$FILE" "$WORK/out.bin" && echo "after restart: get identical"

#!/usr/bin/env bash
# Upload/download benchmark on the in-process testnet (`safe testnet up`, 10
# nodes on 127.0.0.1, K = 5): a new testnet per run, `safe put FILE`, then
# `safe get` of it to /dev/null. Besides wall time it prints the testnet
# process's CPU seconds across each operation and the host's steal time,
# which are steadier than wall time on a shared VM: compare two builds by
# alternating them (SAFE_BIN=old ... ; SAFE_BIN=new ...), not one after the
# other.
#
# Usage: cargo build --release && scripts/bench-testnet.sh FILE [RUNS]
# Each run's directory (5 copies of FILE) is removed after the run, so many
# runs do not fill the disk; nodes store chunks in a few large segment
# files, which are quick to delete.
set -euo pipefail

BIN=${SAFE_BIN:-target/release/safe}
FILE=${1:?usage: scripts/bench-testnet.sh FILE [RUNS]}
RUNS=${2:-1}
DIRS=()
P=
cleanup() {
    if [ -n "$P" ]; then kill -TERM "$P" 2>/dev/null || true; wait "$P" 2>/dev/null || true; fi
    rm -rf "${DIRS[@]}"
}
trap cleanup EXIT

cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
steal() { awk '/^cpu /{print $9}' /proc/stat; }

for _ in $(seq "$RUNS"); do
    W=$(mktemp -d ${BENCH_TMP:-/tmp}/safe-bench.XXXXXX)
    DIRS+=("$W")
    export SAFE_HOME=$W/home
    # The default testnet of SAFE_HOME, so that put and get find its contacts.
    "$BIN" testnet up > "$W/up.log" 2>&1 &
    P=$!
    for _ in $(seq 200); do grep -q '^ready' "$W/up.log" && break; sleep 0.05; done
    grep -q '^ready' "$W/up.log" || { echo "testnet did not start"; cat "$W/up.log"; exit 1; }

    c0=$(cpu "$P"); s0=$(steal)
    /usr/bin/time -f "%e s wall, client %U s user %S s sys, %M KB peak" \
        "$BIN" put "$FILE" --json > "$W/put.json" 2> "$W/put.err" \
        || { echo "put failed:"; cat "$W/put.err"; df -h "$W" | tail -1; exit 1; }
    c1=$(cpu "$P"); s1=$(steal)
    echo "put: $(tail -1 "$W/put.err"); nodes $(echo "$c1 - $c0" | bc) CPU s; steal $(( (s1 - s0) * 10 )) ms"

    ADDR=$(grep -o 'safe://[a-z0-9]*' "$W/put.json" | head -1)
    /usr/bin/time -f "%e s wall, client %U s user %S s sys, %M KB peak" \
        "$BIN" get "$ADDR" > /dev/null 2> "$W/get.err" \
        || { echo "get failed:"; cat "$W/get.err"; exit 1; }
    c2=$(cpu "$P")
    echo "get: $(tail -1 "$W/get.err"); nodes $(echo "$c2 - $c1" | bc) CPU s"

    kill -TERM "$P"; wait "$P" || true; P=
    rm -rf "$W"
done

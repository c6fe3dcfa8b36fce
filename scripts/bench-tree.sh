#!/usr/bin/env bash
# Directory snapshot benchmark on the in-process testnet (`safe testnet up`,
# 10 nodes on 127.0.0.1, K = 5): `safe put DIR`, the same put again (the
# put cache should make it send nothing), `safe get` of the snapshot into a
# new directory, then `diff -r` against the original.
#
# Usage: cargo build --release && scripts/bench-tree.sh [DIR]
# DIR defaults to the Rust documentation the toolchain ships (about 52 000
# files, 650 MB). The run's directory is removed afterwards.
set -euo pipefail

BIN=${SAFE_BIN:-target/release/safe}
D=${1:-$(rustc --print sysroot)/share/doc/rust/html}
[ -d "$D" ] || { echo "no directory $D (give one)"; exit 1; }
W=$(mktemp -d ${BENCH_TMP:-/tmp}/safe-tree-bench.XXXXXX)
P=
cleanup() {
    if [ -n "$P" ]; then kill -TERM "$P" 2>/dev/null || true; wait "$P" 2>/dev/null || true; fi
    rm -rf "$W"
}
trap cleanup EXIT
export SAFE_HOME=$W/home
"$BIN" testnet up > "$W/up.log" 2>&1 &
P=$!
for _ in $(seq 200); do grep -q '^ready' "$W/up.log" && break; sleep 0.05; done
grep -q '^ready' "$W/up.log" || { echo "testnet did not start"; cat "$W/up.log"; exit 1; }

echo "tree: $(find "$D" -type f | wc -l) files, $(du -sb "$D" | cut -f1) bytes"
time_it() { /usr/bin/time -f "$1: %e s wall, client %U s user %S s sys, %M KB peak" "${@:2}"; }
time_it put "$BIN" put "$D" --json > "$W/put.json" 2> "$W/put.err" || { cat "$W/put.err"; exit 1; }
tail -1 "$W/put.err"; cat "$W/put.json"
ADDR=$(grep -o 'safe://d[a-z0-9]*' "$W/put.json" | head -1)
time_it re-put "$BIN" put "$D" --json > "$W/put2.json" 2> "$W/put2.err" || { cat "$W/put2.err"; exit 1; }
tail -1 "$W/put2.err"; cat "$W/put2.json"
time_it get "$BIN" get "$ADDR" -o "$W/out" 2> "$W/get.err" || { cat "$W/get.err"; exit 1; }
tail -1 "$W/get.err"
diff -r "$D" "$W/out" > /dev/null && echo "identical (diff -r)" || { echo "DIFFERENT"; exit 1; }

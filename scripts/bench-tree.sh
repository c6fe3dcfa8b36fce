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

D=${1:-$(rustc --print sysroot)/share/doc/rust/html}
[ -d "$D" ] || { echo "no directory $D (give one)"; exit 1; }
. "$(dirname "$0")/testnet-lib.sh"

echo "tree: $(find "$D" -type f | wc -l) files, $(du -sb "$D" | cut -f1) bytes"
time_it put "$BIN" put "$D" --json > "$W/put.json" 2> "$W/put.err" || { cat "$W/put.err"; exit 1; }
tail -1 "$W/put.err"; cat "$W/put.json"
ADDR=$(grep -o 'safe://d[a-z0-9]*' "$W/put.json" | head -1)
time_it re-put "$BIN" put "$D" --json > "$W/put2.json" 2> "$W/put2.err" || { cat "$W/put2.err"; exit 1; }
tail -1 "$W/put2.err"; cat "$W/put2.json"
time_it get "$BIN" get "$ADDR" -o "$W/out" 2> "$W/get.err" || { cat "$W/get.err"; exit 1; }
tail -1 "$W/get.err"
diff -r "$D" "$W/out" > /dev/null && echo "identical (diff -r)" || { echo "DIFFERENT"; exit 1; }

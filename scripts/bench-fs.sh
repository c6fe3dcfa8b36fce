#!/usr/bin/env bash
# Filesystem benchmark on the in-process testnet (`safe testnet up`, 10
# nodes on 127.0.0.1, K = 5): create an account, `safe fs put` a large
# tree, change 10 files and `safe fs sync`, log in from a second data
# directory and `safe fs get` the tree back, then `diff -r`.
#
# Usage: cargo build --release && scripts/bench-fs.sh [DIR]
# DIR defaults to the Rust documentation the toolchain ships (about 52 000
# files, 650 MB); it is copied first (10 of its files get changed).
set -euo pipefail

SRC=${1:-$(rustc --print sysroot)/share/doc/rust/html}
[ -d "$SRC" ] || { echo "no directory $SRC (give one)"; exit 1; }
. "$(dirname "$0")/testnet-lib.sh"
cp -a "$SRC" "$W/tree"
D=$W/tree

echo "tree: $(find "$D" -type f | wc -l) files, $(du -sb "$D" | cut -f1) bytes"
echo 'correct horse battery' | time_it create "$BIN" account create bench --password-stdin > /dev/null
time_it "fs put" "$BIN" fs put "$D" /docs
sleep 2.1   # past the put cache's racy window for the files just walked
find "$D" -name '*.html' | sed -n 1,10p | while read -r f; do echo "<!-- changed -->" >> "$f"; done
sleep 2.1   # the changed files, too, settle (else they are re-read, not re-cached)
time_it "fs sync (10 changed)" "$BIN" fs sync "$D" /docs
time_it "fs sync (unchanged)" "$BIN" fs sync "$D" /docs
export SAFE_HOME=$W/two
echo 'correct horse battery' | time_it login "$BIN" account login bench --password-stdin
time_it "fs get" "$BIN" fs get /docs -o "$W/out"
diff -r "$D" "$W/out" > /dev/null && echo "identical (diff -r)" || { echo "DIFFERENT"; exit 1; }
"$BIN" fs history

#!/usr/bin/env bash
# Account benchmark on the in-process testnet (`safe testnet up`, 10 nodes
# on 127.0.0.1, K = 5): `safe account create`, then logins from a second
# data directory with the right password, a wrong password and an unknown
# username (the last two must take the same time and print the same line).
# Each node allows 8 password attempts per account in a burst, so the run
# makes at most 7 on one account.
#
# Usage: cargo build --release && scripts/bench-login.sh
set -euo pipefail

. "$(dirname "$0")/testnet-lib.sh"

echo 'correct horse battery' | time_it create "$BIN" account create alice --password-stdin > /dev/null
export SAFE_HOME=$W/two
for i in 1 2; do
    echo 'correct horse battery' | time_it "login $i" "$BIN" account login alice --password-stdin
done
for i in 1 2; do
    echo 'wrong horse battery' | time_it "wrong password $i" "$BIN" account login alice --password-stdin || true
    echo 'correct horse battery' | time_it "unknown user $i" "$BIN" account login "nobody$i" --password-stdin || true
done

# Sourced by the benchmark scripts: a work directory removed on exit, and
# a testnet (`safe testnet up`: 10 nodes on 127.0.0.1) in it, stopped on
# exit. Sets BIN, W (the work directory), SAFE_HOME ($W/one) and
# SAFE_PEERS (the testnet's contacts).
BIN=${SAFE_BIN:-target/release/safe}
W=$(mktemp -d ${BENCH_TMP:-/tmp}/safe-bench.XXXXXX)
P=
cleanup() {
    if [ -n "$P" ]; then kill -TERM "$P" 2>/dev/null || true; wait "$P" 2>/dev/null || true; fi
    rm -rf "$W"
}
trap cleanup EXIT
export SAFE_HOME=$W/one
"$BIN" testnet up > "$W/up.log" 2>&1 &
P=$!
for _ in $(seq 200); do grep -q '^ready' "$W/up.log" && break; sleep 0.05; done
grep -q '^ready' "$W/up.log" || { echo "testnet did not start"; cat "$W/up.log"; exit 1; }
SAFE_PEERS=$(grep -v '^#' "$W/one/contacts" | paste -sd,)
export SAFE_PEERS
time_it() { /usr/bin/time -f "$1: %e s wall, client %U s user %S s sys, %M KB peak" "${@:2}"; }

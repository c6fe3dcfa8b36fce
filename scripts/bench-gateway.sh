#!/usr/bin/env bash
# The gateway against a plain local web server, measured in the same run:
#   - a small page at 64 connections (wrk), gateway warm vs python3 -m http.server
#   - a big file through the gateway (curl), BIG_MIB MiB (default 1024)
#   - cold name resolution: the first request to each of NAMES fresh names
#   - the gateway's peak memory
# Needs wrk and curl. Everything runs on 127.0.0.1 and stops by itself.
# Usage: scripts/bench-gateway.sh  (after cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
BIG_MIB=${BIG_MIB:-1024}
NAMES=${NAMES:-20}
PORT=${PORT:-18080}
PY_PORT=${PY_PORT:-18081}
. scripts/testnet-lib.sh
G= ; PY=
stop_servers() {
    for p in $G $PY; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}
trap 'stop_servers; cleanup' EXIT

SITE=$W/site
mkdir -p "$SITE"
printf '<!doctype html><title>bench</title><p>hello from the network</p>\n' > "$SITE/index.html"
head -c $((BIG_MIB << 20)) /dev/urandom > "$SITE/big.bin"
time_it "publish (${BIG_MIB} MiB + index.html)" "$BIN" publish "$SITE" --name bench > "$W/publish.out" 2>&1; cat "$W/publish.out"
D=$(grep -o 'safe://d[a-z0-9]*' "$W/publish.out" | head -1)
for i in $(seq "$NAMES"); do
    "$BIN" name register "cold$i" > /dev/null 2>&1
    "$BIN" name set "cold$i" www "$D" > /dev/null 2>&1
done

"$BIN" gateway --listen 127.0.0.1:$PORT > "$W/gateway.log" 2>&1 &
G=$!
for _ in $(seq 100); do grep -q '^gateway' "$W/gateway.log" && break; sleep 0.05; done
(cd "$SITE" && exec python3 -m http.server $PY_PORT --bind 127.0.0.1 > /dev/null 2>&1) &
PY=$!
sleep 0.5

echo "== cold name resolution: first request to each of $NAMES names"
for i in $(seq "$NAMES"); do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "http://www.cold$i.localhost:$PORT/index.html" \
        --resolve "www.cold$i.localhost:$PORT:127.0.0.1"
done > "$W/cold-raw.txt"
if grep -qv '^200 ' "$W/cold-raw.txt"; then echo "a cold request failed:"; cat "$W/cold-raw.txt"; exit 1; fi
cut -d' ' -f2 "$W/cold-raw.txt" | sort -n > "$W/cold.txt"
awk '{a[NR]=$1*1000} END {printf "cold: p50 %.1f ms, max %.1f ms over %d names\n", a[int((NR+1)/2)], a[NR], NR}' "$W/cold.txt"

echo "== small page, gateway (warm), 64 connections"
curl -s -o /dev/null -H "Host: www.bench.localhost:$PORT" "http://127.0.0.1:$PORT/index.html"
wrk -t2 -c64 -d10s --latency -H "Host: www.bench.localhost:$PORT" "http://127.0.0.1:$PORT/index.html" \
    | grep -E 'Requests/sec|Latency|50%|99%|Non-2xx|errors'
echo "== small page, python3 -m http.server, 64 connections"
wrk -t2 -c64 -d10s --latency "http://127.0.0.1:$PY_PORT/index.html" \
    | grep -E 'Requests/sec|Latency|50%|99%|Non-2xx|errors'

echo "== ${BIG_MIB} MiB file through the gateway"
curl -s -o /dev/null -w 'big: %{size_download} bytes in %{time_total} s = %{speed_download} B/s\n' \
    -H "Host: www.bench.localhost:$PORT" "http://127.0.0.1:$PORT/big.bin"

echo "== 200 slow readers of the big file at once (1 MiB/s each, 10 s)"
READERS=()
for i in $(seq 200); do
    curl -s -o /dev/null --limit-rate 1M -m 10 -H "Host: www.bench.localhost:$PORT" \
        "http://127.0.0.1:$PORT/big.bin" &
    READERS+=($!)
done
sleep 5
curl -s -o /dev/null -w 'a small page meanwhile: %{http_code} in %{time_total} s\n' \
    -H "Host: www.bench.localhost:$PORT" "http://127.0.0.1:$PORT/index.html"
for p in "${READERS[@]}"; do wait "$p" 2>/dev/null || true; done

echo "== gateway memory (peak over the whole run)"
grep -E 'VmHWM|VmRSS' /proc/$G/status

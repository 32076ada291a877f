#!/usr/bin/env bash
# bench/scale/tokens.sh — memory stays bounded while 1,000,000 distinct valid tokens are presented.
#
# Mints N (default 1,000,000) distinct tokens, starts the Gatehouse billing server (release,
# default configuration: verified-token cache of 10,000 entries) pinned to one core, and sends
# tools/call lookup_invoice with a new token on every request (wrk, c=32, other core) until all
# N have been presented (duration calibrated from a short first run, capped at MAX_SECONDS).
# Samples the server's RSS every 5 s and prints RSS against tokens presented: it must level off
# once the cache is full instead of growing with the number of tokens.
#
# Environment: N=1000000 PORT=18080 ISSUER_PORT=18090 MAX_SECONDS=600.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${N:-1000000}
PORT=${PORT:-18080}
ISSUER_PORT=${ISSUER_PORT:-18090}
MAX_SECONDS=${MAX_SECONDS:-600}
# shellcheck source=bench/scale/lib.sh
source "$ROOT/bench/scale/lib.sh"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
(cd "$ROOT" && cargo build --release --quiet -p gatehouse-cli -p gatehouse-bench --bins)

log "minting $N tokens"
"$TARGET/release/bench-issuer" --listen "127.0.0.1:$ISSUER_PORT" --resource "$URL" --out "$WORK" \
  --tokens "$N" > "$WORK/issuer.log" 2>&1 &
PIDS+=($!)
wait_http "$ISSUER/jwks" 600
cat "$WORK/issuer.log" >&2

gatehouse_config "$WORK/billing.db" "seed_demo_data = true"
taskset -c 0 "$TARGET/release/gatehouse" serve --config "$WORK/gatehouse.toml" > "$WORK/server.log" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
wait_http "$URL" 60

rss() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER/status"; }
BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup_invoice","arguments":{"invoiceId":"INV-2041"}}}'
run_wrk() { # seconds
  BODY="$BODY" TOKEN_FILE="$WORK/tokens.txt" UNIQUE=1 taskset -c 1 wrk -t1 -c32 -d"$1s" --timeout 5s \
    -s "$ROOT/bench/wrk.lua" "$URL"
}
log "RSS before load: $(rss) MB"
run_wrk 5 > "$WORK/calib.out" 2>&1
sent=$(awk '/requests in/ {print $1}' "$WORK/calib.out")
rate=$(awk '/^Requests\/sec/ {printf "%d", $2}' "$WORK/calib.out")
secs=$(( (N - sent) / (rate > 0 ? rate : 1) + 2 ))
((secs > MAX_SECONDS)) && secs=$MAX_SECONDS
log "calibration: $sent requests at $rate req/s; RSS $(rss) MB; presenting the rest over ${secs}s"

( while sleep 5; do echo "$(date +%s) $(rss)"; done ) > "$WORK/rss.txt" &
SAMPLER=$!
PIDS+=($SAMPLER)
start=$(date +%s)
run_wrk "$secs" > "$WORK/main.out" 2> "$WORK/main.err"
kill "$SAMPLER"
total=$((sent + $(awk '/requests in/ {print $1}' "$WORK/main.out")))
non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/main.out")
echo
echo "| seconds into the run | tokens presented (approx.) | RSS MB |"
echo "|---:|---:|---:|"
awk -v s="$start" -v sent="$sent" -v r="$(awk '/^Requests\/sec/ {print $2}' "$WORK/main.out")" \
  '{ t = $1 - s; printf "| %d | %d | %s |\n", t, sent + t * r, $2 }' "$WORK/rss.txt"
echo
echo "tokens presented: $total (distinct: $((total < N ? total : N))), non-2xx: ${non2xx:-0}, peak RSS (VmHWM): $(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER/status") MB, final RSS: $(rss) MB"
if grep -q WRAPPED "$WORK/main.err"; then
  echo "note: the token file wrapped (all $N presented; later requests reuse tokens)"
fi

#!/usr/bin/env bash
# bench/scale/invoices.sh — lookup_invoice latency is flat between 10 k and 1 M invoices.
#
# Seeds two SQLite billing databases directly with SQL (seed-invoices: one recursive-CTE INSERT),
# 10,000 and 1,000,000 invoices for tenant acme, then for each runs the Gatehouse billing server
# (release, pinned to core 0) and loads tools/call lookup_invoice of an invoice in the middle of
# the table (wrk on core 1, one reused token, c=1 and c=32). The (tenant_id, id) primary key makes
# a lookup one B-tree descent, so latency must not depend on the row count.
#
# Environment: SIZES="10000 1000000" WINDOW=10 PORT=18080 ISSUER_PORT=18090.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SIZES=${SIZES:-"10000 1000000"}
WINDOW=${WINDOW:-10}
PORT=${PORT:-18080}
ISSUER_PORT=${ISSUER_PORT:-18090}
# shellcheck source=bench/scale/lib.sh
source "$ROOT/bench/scale/lib.sh"
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.1f", v * 1000 } }'
}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
(cd "$ROOT" && cargo build --release --quiet -p gatehouse-cli -p gatehouse-bench --bins)

"$TARGET/release/bench-issuer" --listen "127.0.0.1:$ISSUER_PORT" --resource "$URL" --out "$WORK" \
  --tokens 0 > "$WORK/issuer.log" 2>&1 &
PIDS+=($!)
wait_http "$ISSUER/jwks" 60

echo "| invoices | conns | req/s | p50 ms | p99 ms | non-2xx |"
echo "|---:|---:|---:|---:|---:|---:|"
for n in $SIZES; do
  db=$WORK/billing-$n.db
  log "seeding $n invoices"
  "$TARGET/release/seed-invoices" --database "$db" --count "$n" >&2
  # Every lookup reads the database: this checks the index, not the invoice cache.
  gatehouse_config "$db" "invoice_cache_ttl_ms = 0"
  taskset -c 0 "$TARGET/release/gatehouse" serve --config "$WORK/gatehouse.toml" > "$WORK/server-$n.log" 2>&1 &
  server=$!
  PIDS+=($server)
  wait_http "$URL" 60
  id=$(printf 'BIG-%07d' $((n / 2)))
  body="{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"lookup_invoice\",\"arguments\":{\"invoiceId\":\"$id\"}}}"
  answer=$(curl -s -X POST "$URL" -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
    -H 'mcp-protocol-version: 2025-11-25' -H "authorization: Bearer $(cat "$WORK/token.txt")" -d "$body")
  if [[ $answer != *"$id"* || $answer == *'"isError":true'* ]]; then
    echo "lookup of $id failed: $answer" >&2
    exit 1
  fi
  for c in 1 32; do
    BODY="$body" TOKEN_FILE="$WORK/token.txt" taskset -c 1 wrk -t1 -c"$c" -d3s -s "$ROOT/bench/wrk.lua" "$URL" > /dev/null
    BODY="$body" TOKEN_FILE="$WORK/token.txt" taskset -c 1 wrk -t1 -c"$c" -d"${WINDOW}s" --latency \
      -s "$ROOT/bench/wrk.lua" "$URL" > "$WORK/wrk.out"
    printf '| %s | %s | %s | %s | %s | %s |\n' "$n" "$c" \
      "$(awk '/^Requests\/sec/ {printf "%d", $2}' "$WORK/wrk.out")" \
      "$(to_ms "$(awk '$1 == "50%" {print $2}' "$WORK/wrk.out")")" \
      "$(to_ms "$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")")" \
      "$(awk '/Non-2xx/ {n = $NF} END {print n + 0}' "$WORK/wrk.out")"
  done
  kill -TERM "$server"
  wait "$server" 2>/dev/null || true
done

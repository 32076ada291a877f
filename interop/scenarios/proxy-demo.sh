#!/usr/bin/env bash
# `gatehouse proxy --demo -- <command…>` in front of the Python stdio server: the printed
# commands are run exactly as printed (the exports, then each curl), and their answers checked:
#   1. no token → 401 with the gateway's resource_metadata;
#   2. tools/list with the user's token → the upstream's tools;
#   3. tools/call of the first tool → a result;
#   4. the same call with the viewer's token → 403 insufficient_scope naming mcp:tools.
# Ports are chosen by the demo (0); it is stopped at the end.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$HERE/.work/run/proxy-demo"
mkdir -p "$OUT"
"$GATEHOUSE" proxy --demo --port 0 --issuer-port 0 -- "$PY" "$HERE/servers/stdio_server.py" \
    >"$OUT/demo.out" 2>"$OUT/demo.err" </dev/null &
DEMO=$!
trap 'kill -TERM $DEMO 2>/dev/null; wait $DEMO 2>/dev/null || true' EXIT
for _ in $(seq 300); do
    grep -q 'Press Ctrl-C' "$OUT/demo.out" 2>/dev/null && break
    kill -0 $DEMO 2>/dev/null || { cat "$OUT/demo.err" >&2; echo "demo exited" >&2; exit 1; }
    sleep 0.1
done
grep -q 'Press Ctrl-C' "$OUT/demo.out" || { echo "demo not ready in 30 s" >&2; exit 1; }

EXPORTS=$(grep -E '^  export ' "$OUT/demo.out" | sed 's/#.*//')
# step N: the curl lines under heading N.
step() {
    awk -v n="$1" '/^[0-9]+\. /{s=($1==n".")} s && /^   curl /{sub(/^   /,""); print}' "$OUT/demo.out"
}
run() { bash -c "set -e; $EXPORTS; $1"; }

out=$(run "$(step 1)")
grep -q '^HTTP/1.1 401' <<<"$out" && grep -q 'resource_metadata="http://127.0.0.1:[0-9]*/.well-known/oauth-protected-resource/mcp"' <<<"$out" \
    || { echo "step 1: $out" >&2; exit 1; }
echo "  ok  1. no token → 401 with the gateway's resource_metadata"

out=$(run "$(step 2)")
names=$(node -e 'const j=JSON.parse(process.argv[1]); console.log(j.result.tools.map(t=>t.name).sort().join(","))' "$out")
[[ "$names" == "admin_reset,echo,whoami" ]] || { echo "step 2: $out" >&2; exit 1; }
echo "  ok  2. tools/list → $names"

out=$(run "$(step 3)")
node -e 'const j=JSON.parse(process.argv[1]); if (!j.result || j.result.isError) process.exit(1)' "$out" \
    || { echo "step 3: $out" >&2; exit 1; }
echo "  ok  3. tools/call → ${out:0:160}"

out=$(run "$(step 4)")
grep -q '^HTTP/1.1 403' <<<"$out" && grep -qi 'error="insufficient_scope"' <<<"$out" && grep -q 'mcp:tools' <<<"$out" \
    || { echo "step 4: $out" >&2; exit 1; }
echo "  ok  4. viewer token → 403 insufficient_scope (mcp:tools)"
echo OK

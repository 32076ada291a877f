#!/usr/bin/env bash
# MCP Inspector CLI (@modelcontextprotocol/inspector 2.x, pinned; needs Node ≥ 22.19, so it runs
# on the pinned Node 22) against `gatehouse serve` with the JWT configuration:
#   1. tools/list and tools/call lookup_invoice with `--header "Authorization: Bearer …"`;
#   2. without a token it must report that authentication is required (and not list tools).
# HOME is a scratch folder and --stored-auth-only keeps the Inspector from starting an
# interactive OAuth flow in CI.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HERE/node_modules/.bin:$PATH"
export HOME="$HERE/.work/run/inspector-home"
mkdir -p "$HOME"
TOKEN=$(node --input-type=module -e "
import { getToken } from '$HERE/lib/http.mjs';
const { token } = await getToken(process.env.AS_JWT, 'billing-reader', { resource: process.env.MCP_JWT });
process.stdout.write(token);")
OUT="$HERE/.work/run/inspector"
mkdir -p "$OUT"

inspector() { timeout 90 mcp-inspector --cli "$MCP_JWT" --stored-auth-only --format json "$@"; }

inspector --method tools/list --header "Authorization: Bearer $TOKEN" >"$OUT/list.json"
node -e '
const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const r = j.result ?? j;
const names = (r.tools ?? []).map((t) => t.name).sort();
console.log("  tools/list →", names.join(", "));
if (!names.includes("lookup_invoice") || !names.includes("void_invoice")) process.exit(1);
' "$OUT/list.json"

inspector --method tools/call --tool-name lookup_invoice --tool-arg invoiceId=INV-2041 \
    --header "Authorization: Bearer $TOKEN" >"$OUT/call.json"
node -e '
const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const r = j.result ?? j;
console.log("  tools/call lookup_invoice →", JSON.stringify(r.structuredContent ?? r.content));
if (r.isError || r.structuredContent?.invoiceId !== "INV-2041") process.exit(1);
' "$OUT/call.json"

set +e
inspector --method tools/list >"$OUT/anon.out" 2>"$OUT/anon.err"
rc=$?
set -e
echo "  without a token: exit $rc; $(head -c 300 "$OUT/anon.err" | tr '\n' ' ')"
if ((rc == 0)); then echo "  expected a non-zero exit without a token"; exit 1; fi
if grep -q lookup_invoice "$OUT/anon.out"; then echo "  tools were listed without a token"; exit 1; fi
grep -q '"auth_required"' "$OUT/anon.err" "$OUT/anon.out" ||
    { echo "  the Inspector did not report that authentication is required"; exit 1; }
echo OK

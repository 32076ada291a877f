#!/usr/bin/env bash
# The official conformance suite (@modelcontextprotocol/conformance) against the
# Gatehouse-protected fixture server, reached through the token-injecting proxy ($PROXY_URL).
# No expected-failures file is used anywhere: the suite's own exit status fails this script
# whenever a scenario it scores fails. Then conformance-extra.mjs tightens what the suite is
# lenient about (scenarios that "pass" without testing anything, checks that pass on any error).
#
# Runs, each into its own directory under .work/run/conformance/:
#   0.1.16/active        0.1.16, its active server scenarios (2025-11-25)
#   0.1.16/pending       0.1.16, the two pending ones the fixture supports
#   next/active          the newest release (npm alias conformance-next), default set
#   next/2026-07-28      the newest release, --requirements 2026-07-28: the 37 required
#                        scenarios (scored: exit status) plus the 13 pending/extension ones the
#                        revision names (tasks-*, json-schema-2020-12, http-*; not scored by the
#                        suite, so conformance-extra.mjs requires every one of them to pass)
#   next/all             the newest release, --suite all (every server scenario, 65): the
#                        pending and draft ones beyond the two sets above
#
# Not supported by the fixture (the suite records them; conformance-extra.mjs asserts they are
# exactly these and nothing else):
#   sep-2640-skills-* (SEP-2640 skills extension): the fixture declares no skills, so every
#     check is SKIPPED — counted as untested, not as passed.
#   tasks-status-notifications: the suite itself skips it (pending the subscriptions/listen
#     rewrite) — untested.
#   server-sse-polling: one WARNING (no `test_reconnection` tool, no event store: a
#     disconnected SSE response is not resumed with Last-Event-ID).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$HERE/.work/run/conformance"
rm -rf "$OUT"
export PATH="$HERE/node_modules/.bin:$PATH" # `conformance` and `node` run on the pinned Node 22

conformance server --url "$PROXY_URL" -o "$OUT/0.1.16/active"
# Two scenarios 0.1.16 marks pending (not run by default); run them too, they must not fail.
for s in json-schema-2020-12 server-sse-polling; do
    conformance server --url "$PROXY_URL" --scenario "$s" -o "$OUT/0.1.16/pending"
done

# The newest release. --timeout: every scenario takes well under a second; a hang fails in 8 s
# rather than the suite's 30 s default.
next() { node "$HERE/node_modules/conformance-next/dist/index.js" server --url "$PROXY_URL" --timeout 8000 "$@"; }
next -o "$OUT/next/active"
next --requirements 2026-07-28 -o "$OUT/next/2026-07-28"
# --suite all exits non-zero because of the unsupported extensions above; its verdict is
# conformance-extra.mjs's, scenario by scenario.
next --suite all -o "$OUT/next/all" || true

node "$HERE/scenarios/conformance-extra.mjs" "$OUT"

// Reads the conformance suite's per-scenario checks.json files (conformance.sh's runs) and
// asserts what the suite itself is lenient about (test-peers.md):
// - every run ran the scenarios it should, and no check of a supported scenario is FAILURE;
// - a scenario "passes" only if it tested something: at least one SUCCESS check besides the
//   wire-schema check, and no SKIPPED check except where the suite skips by design — a
//   scenario whose checks all skipped is untested, and only the unsupported ones listed in
//   conformance.sh may be untested;
// - the scenarios that a "tool not found" (or any) error would also pass really got the
//   fixtures' own results: tools-call-simple-text, tools-call-error, and the SEP-2322
//   scenarios that accept any error or any non-complete result;
// - the DNS-rebinding rejection came from the Host/Origin guard (421 for a foreign Host, with
//   the guard's body), not from the token check (401) — the proxy injects a valid token.
//
//   node scenarios/conformance-extra.mjs OUT   (OUT/SET/RUN/server-NAME-TIMESTAMP/checks.json)

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { check } from '../lib/assert.mjs';

const root = process.argv[2];
// run ("0.1.16/active", "next/2026-07-28", …) → Map(scenario → checks)
const runs = new Map();
for (const set of readdirSync(root)) {
  for (const run of readdirSync(join(root, set))) {
    const results = new Map();
    for (const dir of readdirSync(join(root, set, run))) {
      const file = join(root, set, run, dir, 'checks.json');
      if (!existsSync(file)) continue;
      const scenario = dir.replace(/^server-/, '').replace(/-\d{4}-\d\d-\d\dT.*$/, '');
      results.set(scenario, JSON.parse(readFileSync(file, 'utf8')));
    }
    runs.set(`${set}/${run}`, results);
  }
}
const find = (run, scenario, id) => runs.get(run)?.get(scenario)?.find((c) => c.id === id);

// Scenarios the fixture does not support (conformance.sh explains each): allowed to fail or to
// test nothing, in the runs that include them. Anything else failing or untested fails here.
const UNSUPPORTED = [/^sep-2640-skills-/];
const unsupported = (s) => UNSUPPORTED.some((re) => re.test(s));
// The suite skips this one itself (pending its subscriptions/listen rewrite).
const SKIPPED_BY_SUITE = new Set(['tasks-status-notifications']);

try {
  // How many scenarios each run must have run.
  const expected = { '0.1.16/active': 30, '0.1.16/pending': 2, 'next/active': 31, 'next/2026-07-28': 50, 'next/all': 65 };
  for (const [run, n] of Object.entries(expected)) {
    check(`${run}: ${runs.get(run)?.size} scenarios ran (expected ${n})`, runs.get(run)?.size === n);
  }

  for (const [run, results] of runs) {
    const failing = [], untested = [], warned = [];
    for (const [scenario, checks] of results) {
      if (unsupported(scenario) || SKIPPED_BY_SUITE.has(scenario)) continue;
      if (checks.some((c) => c.status === 'FAILURE')) failing.push(scenario);
      const tested = checks.some((c) => c.status === 'SUCCESS' && c.id !== 'wire-schema-valid');
      const skipped = checks.filter((c) => c.status === 'SKIPPED').map((c) => c.id);
      if (!tested || skipped.length) untested.push(`${scenario} (${skipped.join(', ') || 'no SUCCESS check'})`);
      for (const c of checks) if (c.status === 'WARNING') warned.push(`${scenario}: ${c.id}`);
    }
    check(`${run}: no supported scenario fails (${failing.join(', ') || 'none'})`, failing.length === 0);
    check(`${run}: every supported scenario tested something (untested: ${untested.join('; ') || 'none'})`, untested.length === 0);
    // The one known warning: server-sse-polling's resumption (conformance.sh).
    const unexpected = warned.filter((w) => w !== 'server-sse-polling: server-sse-disconnect-resume');
    console.log(`  (${run} warnings: ${warned.join(', ') || 'none'})`);
    check(`${run}: no warning beyond server-sse-polling's resumption`, unexpected.length === 0);
  }
  // The 2026-07-28 run has none of the unsupported ones: all 50 (37 required, 13 pending or
  // extension, the tasks ones among them) must pass and test something.
  check('next/2026-07-28: no unsupported scenario in the run', ![...runs.get('next/2026-07-28').keys()].some(unsupported));

  for (const run of ['0.1.16/active', 'next/active', 'next/2026-07-28']) {
    const simple = find(run, 'tools-call-simple-text', 'tools-call-simple-text')?.details?.result;
    check(`${run} tools-call-simple-text: the fixture text, isError false`,
      simple?.isError === false && simple?.content?.[0]?.text === 'This is a simple text response for testing.');
    const err = find(run, 'tools-call-error', 'tools-call-error')?.details?.result;
    check(`${run} tools-call-error: the fixture's own error text (not a "tool not found" result)`,
      err?.isError === true && err?.content?.[0]?.text === 'This tool intentionally returns an error for testing');
    const rejected = find(run, 'dns-rebinding-protection', 'localhost-host-rebinding-rejected')?.details;
    check(`${run} dns-rebinding: forged Host/Origin → ${rejected?.statusCode} ${JSON.stringify(rejected?.body)} (guard, not 401)`,
      rejected?.statusCode === 421 && rejected?.body?.error === 'misdirected_request');
    const accepted = find(run, 'dns-rebinding-protection', 'localhost-host-valid-accepted')?.details;
    check(`${run} dns-rebinding: own Host/Origin → ${accepted?.statusCode}`, accepted?.statusCode === 200);
  }

  // SEP-2322 scenarios that pass on any error or any non-complete result: the fixtures' own
  // answers, not a "tool not found".
  const R = 'next/2026-07-28';
  const text = (scenario, id) => find(R, scenario, id)?.details?.result?.content?.[0]?.text;
  check('input-required elicitation: round 2 greets the name given',
    text('input-required-result-basic-elicitation', 'sep-2322-elicitation-complete') === 'Hello, Alice!');
  check('input-required extra keys ignored: the same greeting',
    text('input-required-result-ignore-extra-params', 'sep-2322-ignore-unexpected-params') === 'Hello, Alice!');
  const rerequest = find(R, 'input-required-result-missing-input-response', 'sep-2322-missing-response-rerequests')?.details?.result;
  check('input-required wrong key: user_name asked for again',
    rerequest?.resultType === 'input_required' && Object.keys(rerequest.inputRequests ?? {}).join() === 'user_name');
  const malformed = find(R, 'input-required-result-validate-input', 'sep-2322-validate-input-responses')?.details?.error;
  check(`input-required malformed answer: -32602 from the fixture's check (${JSON.stringify(malformed)})`,
    malformed?.code === -32602 && malformed?.message === 'inputResponses: malformed response');
  const tampered = find(R, 'input-required-result-tampered-state', 'sep-2322-reject-tampered-state')?.details?.tamperedResponse;
  check(`input-required tampered state: -32602 integrity failure (${JSON.stringify(tampered)})`,
    tampered?.code === -32602 && tampered?.message === 'requestState failed its integrity check');
  check('input-required request state: verified ("state-ok")',
    /^state-ok/.test(text('input-required-result-request-state', 'sep-2322-request-state-complete') ?? ''));
  const caps = find(R, 'input-required-result-capability-check', 'sep-2322-respect-client-capabilities')?.details?.result;
  check('input-required capabilities: only the declared sampling is asked for',
    Object.keys(caps?.inputRequests ?? {}).join() === 'capital_question');
  const missingCap = find(R, 'server-stateless', 'sep-2575-server-rejects-undeclared-capability')?.details?.response?.error;
  check('server-stateless: -32021 names sampling in requiredCapabilities',
    missingCap?.code === -32021 && typeof missingCap?.data?.requiredCapabilities?.sampling === 'object');
  const decoded = find(R, 'http-custom-header-server-validation', 'sep-2243-server-decode-base64')?.details?.responseBody;
  check('Mcp-Param Base64 header accepted: the tool ran with the decoded value',
    typeof decoded === 'string' && decoded.includes('region: Hello'));
  console.log('OK');
} catch (e) {
  console.error('FAILED:', e.message);
  process.exit(1);
}

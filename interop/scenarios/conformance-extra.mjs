// Reads the conformance suite's per-scenario checks.json files and asserts what the suite
// itself is lenient about (test-peers.md):
// - every check of every scenario is SUCCESS/INFO/WARNING, never FAILURE, and all 30 active
//   scenarios ran;
// - the two tool scenarios that a "tool not found" error result would also pass really got the
//   fixture's own results;
// - the DNS-rebinding rejection came from the Host/Origin guard (421 for a foreign Host, with
//   the guard's body), not from the token check (401) — the proxy injects a valid token.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { check } from '../lib/assert.mjs';

const root = process.argv[2];
const results = new Map();
for (const group of readdirSync(root)) {
  for (const dir of readdirSync(join(root, group))) {
    const scenario = dir.replace(/^server-/, '').replace(/-\d{4}-\d\d-\d\dT.*$/, '');
    results.set(scenario, JSON.parse(readFileSync(join(root, group, dir, 'checks.json'), 'utf8')));
  }
}
const find = (scenario, id) => results.get(scenario)?.find((c) => c.id === id);

try {
  const all = [...results.values()].flat();
  const failures = all.filter((c) => c.status === 'FAILURE');
  check(`${results.size} scenarios ran (30 active + 2 pending), ${all.length} checks, ${failures.length} FAILURE`, results.size >= 32 && failures.length === 0);
  const warnings = all.filter((c) => c.status === 'WARNING').map((c) => c.id);
  console.log(`  (warnings: ${warnings.join(', ') || 'none'})`);

  const simple = find('tools-call-simple-text', 'tools-call-simple-text')?.details?.result;
  check('tools-call-simple-text: the fixture text, isError false',
    simple?.isError === false && simple?.content?.[0]?.text === 'This is a simple text response for testing.');
  const err = find('tools-call-error', 'tools-call-error')?.details?.result;
  check('tools-call-error: the fixture\'s own error text (not a "tool not found" result)',
    err?.isError === true && err?.content?.[0]?.text === 'This tool intentionally returns an error for testing');

  const rejected = find('dns-rebinding-protection', 'localhost-host-rebinding-rejected')?.details;
  check(`dns-rebinding: forged Host/Origin → ${rejected?.statusCode} ${JSON.stringify(rejected?.body)} (guard, not 401)`,
    rejected?.statusCode === 421 && rejected?.body?.error === 'misdirected_request');
  const accepted = find('dns-rebinding-protection', 'localhost-host-valid-accepted')?.details;
  check(`dns-rebinding: own Host/Origin → ${accepted?.statusCode}`, accepted?.statusCode === 200);
  console.log('OK');
} catch (e) {
  console.error('FAILED:', e.message);
  process.exit(1);
}

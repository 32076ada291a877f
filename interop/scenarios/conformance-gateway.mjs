// The conformance differential (design note gateway.md §4.A): the official suite's server
// scenarios run directly against the fixture server (crates/gatehouse-conformance
// --dangerous-no-auth, loopback) and, at the same time, through `gatehouse proxy` in front of
// the same fixtures as a stdio child and as that HTTP upstream (the suite reaching the gateway
// through lib/token-proxy.mjs). Every scenario that passes directly must pass through the
// gateway, except the ones listed in conformance-gateway-gaps.txt — and a listed one that
// passes (or no longer passes directly) fails the run, so the list stays honest.
//
//   node scenarios/conformance-gateway.mjs --set 0.1.16|next|next-2026-07-28 --out DIR
//
// Reads $CONF_DIRECT, $CONF_VIA_STDIO and $CONF_VIA_HTTP. Prints the pass table; writes it to
// DIR/table.md.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { set: { type: 'string' }, out: { type: 'string' } } });

// The suite versions (package.json): 0.1.16 as pinned since the start, `conformance-next` the
// registry's newest release under an npm alias.
const SETS = {
  // 0.1.16 has no --timeout (30 s per scenario); the scenarios that fail through the gateway
  // fail fast rather than wait for it.
  '0.1.16': { bin: 'node_modules/@modelcontextprotocol/conformance/dist/index.js', extra: [] },
  // A scenario that waits for something the gateway does not forward ends after 8 s instead
  // of the suite's 30 s default; every scenario takes well under a second directly.
  next: { bin: 'node_modules/conformance-next/dist/index.js', extra: ['--timeout', '8000'] },
  'next-2026-07-28': { bin: 'node_modules/conformance-next/dist/index.js', extra: ['--timeout', '8000', '--requirements', '2026-07-28'] },
};
const set = SETS[args.set];
if (!set) throw new Error(`--set must be one of ${Object.keys(SETS)}`);
const TARGETS = { direct: process.env.CONF_DIRECT, stdio: process.env.CONF_VIA_STDIO, http: process.env.CONF_VIA_HTTP };
for (const [t, url] of Object.entries(TARGETS)) if (!url) throw new Error(`no URL for target ${t}`);

// Runs the suite against one URL; resolves to Map(scenario → pass) from its checks.json files
// (pass: the scenario wrote its checks and none is FAILURE). The suite's own exit status is not
// used: it is non-zero whenever anything fails, which is expected here.
function run(target, url) {
  const out = join(args.out, args.set, target);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const argv = [join(HERE, set.bin), 'server', '--url', url, '-o', out, ...set.extra];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    child.on('error', reject);
    child.on('close', () => {
      writeFileSync(join(out, 'suite.log'), text);
      const results = new Map();
      for (const dir of readdirSync(out)) {
        const m = /^server-(.*)-\d{4}-\d\d-\d\dT[\d-]+Z$/.exec(dir);
        const file = join(out, dir, 'checks.json');
        if (!m || !existsSync(file)) continue;
        const checks = JSON.parse(readFileSync(file, 'utf8'));
        results.set(m[1], !checks.some((c) => c.status === 'FAILURE'));
      }
      // A scenario the suite announced but that wrote no checks (crashed, timed out hard).
      for (const line of text.split('\n')) {
        const m = /^[✓✗] ([a-z0-9-]+):/.exec(line);
        if (m && !results.has(m[1])) results.set(m[1], line.startsWith('✓'));
      }
      resolve(results);
    });
  });
}

// The gaps file: `SET TARGET SCENARIO  reason…`, SET/TARGET may be `*`; `#` starts a comment.
const gaps = readFileSync(join(HERE, 'conformance-gateway-gaps.txt'), 'utf8')
  .split('\n')
  .map((l) => l.replace(/#.*/, '').trim())
  .filter(Boolean)
  .map((l) => {
    const [s, target, scenario, ...reason] = l.split(/\s+/);
    return { set: s, target, scenario, reason: reason.join(' ') };
  });
const listed = (target, scenario) =>
  gaps.find((g) => (g.set === '*' || g.set === args.set) && (g.target === '*' || g.target === target) && g.scenario === scenario);

const [direct, stdio, http] = await Promise.all(Object.entries(TARGETS).map(([t, url]) => run(t, url)));
const via = { stdio, http };
const scenarios = [...new Set([...direct.keys(), ...stdio.keys(), ...http.keys()])].sort();
const mark = (m, s) => (!m.has(s) ? '—' : m.get(s) ? 'pass' : 'FAIL');

const problems = [];
const rows = [`| scenario (${args.set}) | direct | gateway stdio | gateway HTTP |`, '|---|---|---|---|'];
for (const s of scenarios) {
  rows.push(`| ${s} | ${mark(direct, s)} | ${mark(stdio, s)} | ${mark(http, s)} |`);
  for (const [t, m] of Object.entries(via)) {
    const gap = listed(t, s);
    if (direct.get(s) && !m.get(s) && !gap) problems.push(`${s}: passes directly, fails through the gateway (${t}) and is not a listed gap`);
    if (gap && m.get(s)) problems.push(`${s}: listed as a gap (${t}: ${gap.reason}) but passes through the gateway now: remove it from the list`);
    if (gap && !direct.get(s)) problems.push(`${s}: listed as a gap (${t}) but does not pass directly either: not a gateway gap`);
  }
}
const passing = (m) => [...m.values()].filter(Boolean).length;
const summary = `${args.set}: direct ${passing(direct)}/${direct.size}, gateway stdio ${passing(stdio)}/${stdio.size}, gateway HTTP ${passing(http)}/${http.size}`;
writeFileSync(join(args.out, args.set, 'table.md'), `${summary}\n\n${rows.join('\n')}\n`);
console.log(rows.join('\n'));
console.log(summary);
// The differential proves nothing if the direct run did not pass a fair share of scenarios.
if (passing(direct) < 20) problems.push(`only ${passing(direct)} scenarios pass directly: the baseline is broken`);
for (const s of direct.keys()) {
  for (const [t, m] of Object.entries(via)) if (!m.has(s)) problems.push(`${s}: ran directly but not through the gateway (${t})`);
}
if (problems.length) {
  console.error(`FAILED:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log('OK');

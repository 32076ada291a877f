// The official TypeScript MCP client (@modelcontextprotocol/sdk) against a Gatehouse server,
// with the SDK's own client-credentials provider doing the whole OAuth discovery.
//
//   node clients/ts-client.mjs --url MCP_URL --issuer AS_ISSUER --client ID --scenario NAME
//
// Scenarios:
//   discovery  401 → protected-resource metadata → AS metadata → token (with `resource`) →
//              tools/list → tools/call lookup_invoice. Every HTTP exchange is recorded through
//              the transport's `fetch` hook and the order is asserted, so a client that got a
//              token some other way would fail.
//   stepup     a token with invoices:read only → void_invoice → 403 insufficient_scope → the
//              SDK's own up-scoping; where that does not obtain invoices:write (SDK 1.32.2, see
//              README), an application-level retry with a new provider → success.
//   gateway    through `gatehouse proxy` to a Python stdio server: the policy's tools only
//              (admin_reset hidden), whoami shows the child's environment holds none of the
//              gateway's, a hidden tool is answered exactly as a missing one, echo needs
//              invoices:write (403 step-up for a read-only client).
//
// Exits 0 on success; prints what it checked. Nothing here prints a token.

import { parseArgs } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

import { client as registered } from '../as/clients.mjs';
import { assert, check, parseChallenge, tokenScopeFromForm } from '../lib/assert.mjs';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    issuer: { type: 'string' },
    client: { type: 'string', default: 'billing-reader' },
    scope: { type: 'string', default: 'invoices:read' },
    scenario: { type: 'string', default: 'discovery' },
    invoice: { type: 'string', default: 'INV-2041' },
  },
});

// Records every request the SDK makes (method, URL, status, challenge, token-request form).
const log = [];
const recordingFetch = async (input, init = {}) => {
  const url = typeof input === 'string' ? input : input.url ?? String(input);
  const method = init.method ?? 'GET';
  const body = typeof init.body === 'string' ? init.body : init.body instanceof URLSearchParams ? init.body.toString() : undefined;
  const response = await fetch(input, init);
  log.push({ method, url: new URL(url), status: response.status, challenge: response.headers.get('www-authenticate'), body });
  return response;
};

const c = registered(args.client);
const provider = new ClientCredentialsProvider({
  clientId: c.id,
  clientSecret: c.secret,
  scope: args.scope,
  expectedIssuer: args.issuer,
  clientName: 'gatehouse-interop-ts',
});
const transport = new StreamableHTTPClientTransport(new URL(args.url), { authProvider: provider, fetch: recordingFetch });
const client = new Client({ name: 'gatehouse-interop-ts', version: '1.0.0' });

const mcpUrl = new URL(args.url);
const isMcp = (e) => e.url.origin === mcpUrl.origin && e.url.pathname === mcpUrl.pathname;
const isToken = (e) => e.method === 'POST' && e.url.pathname === '/token';

try {
  await client.connect(transport);
  check(`negotiated protocol ${transport.protocolVersion ?? '(none)'}`, ['2025-06-18', '2025-11-25'].includes(transport.protocolVersion));

  // 1. The first MCP request had no token and got 401 with a resource_metadata challenge.
  const first = log.find(isMcp);
  assert(first?.status === 401, `first MCP request: expected 401, got ${first?.status}`);
  const ch = parseChallenge(first.challenge);
  assert(ch.scheme === 'bearer' && ch.params.resource_metadata, `401 challenge lacks resource_metadata: ${first.challenge}`);
  check('401 challenge names resource_metadata', true);
  // 2. Protected-resource metadata fetched from that URL, then AS metadata, then the token.
  const iPrm = log.findIndex((e) => e.url.href === ch.params.resource_metadata && e.status === 200);
  const iAsm = log.findIndex((e) => e.url.origin === new URL(args.issuer).origin && e.url.pathname.startsWith('/.well-known/') && e.status === 200);
  const iTok = log.findIndex((e) => isToken(e) && e.status === 200);
  assert(iPrm >= 0 && iAsm > iPrm && iTok > iAsm, `discovery order wrong: PRM ${iPrm}, AS metadata ${iAsm}, token ${iTok}`);
  check('PRM → AS metadata → token, in order', true);
  const form = new URLSearchParams(log[iTok].body);
  assert(form.get('resource') === args.url, `token request resource=${form.get('resource')}, want ${args.url}`);
  check(`token requested with resource=${form.get('resource')} scope=${form.get('scope')}`, true);

  const tools = await client.listTools();
  const names = tools.tools.map((t) => t.name).sort();
  if (args.scenario === 'gateway') {
    check(`tools/list → ${names.join(', ')} (admin_reset hidden by the policy)`, names.join(',') === 'echo,whoami');
  } else {
    check(`tools/list → ${names.join(', ')}`, names.includes('lookup_invoice') && names.includes('void_invoice'));
  }

  if (args.scenario === 'gateway') {
    const who = await client.callTool({ name: 'whoami', arguments: {} });
    const info = who.structuredContent ?? JSON.parse(who.content[0].text);
    const leaked = info.env.filter((k) => /^(INTEROP_|GATEHOUSE|RUST_LOG)/.test(k));
    check(`whoami: upstream pid ${info.pid}, child environment ${info.env.join(' ')}`, !who.isError && leaked.length === 0 && info.env.includes('PYTHONUNBUFFERED'));
    const again = await client.callTool({ name: 'whoami', arguments: {} });
    const pid2 = (again.structuredContent ?? JSON.parse(again.content[0].text)).pid;
    check(`the same process serves the same principal (pid ${pid2})`, pid2 === info.pid);
    const failure = async (name) => {
      try {
        const r = await client.callTool({ name, arguments: {} });
        return `result ${JSON.stringify(r)}`;
      } catch (e) {
        return String(e?.message);
      }
    };
    const hidden = await failure('admin_reset');
    const missing = await failure('no_such_tool');
    check(`hidden tool answered as a missing one: "${hidden}"`, hidden === missing && /not found/.test(hidden));
    const canWrite = args.scope.split(' ').includes('invoices:write');
    if (canWrite) {
      const r = await client.callTool({ name: 'echo', arguments: { text: 'through the gateway ✓' } });
      check(`echo → ${r.content?.[0]?.text}`, !r.isError && r.content?.[0]?.text === 'through the gateway ✓');
    } else {
      const e = await failure('echo');
      const forbidden = log.filter((x) => isMcp(x) && x.status === 403).at(-1);
      const fch = forbidden && parseChallenge(forbidden.challenge);
      check(`echo with a read-only token → 403 ${fch?.params.error} scope="${fch?.params.scope}" (${e})`, fch?.params.error === 'insufficient_scope' && fch.params.scope.split(' ').includes('invoices:write'));
    }
  } else if (args.scenario === 'discovery') {
    const r = await client.callTool({ name: 'lookup_invoice', arguments: { invoiceId: args.invoice } });
    const sc = r.structuredContent ?? {};
    check(`tools/call lookup_invoice ${args.invoice} → ${JSON.stringify(sc)}`, !r.isError && JSON.stringify(sc).includes(args.invoice));
  } else if (args.scenario === 'stepup') {
    const okTokens = () => log.filter((e) => isToken(e) && e.status === 200);
    const tokensBefore = okTokens().length;
    assert(tokenScopeFromForm(log[iTok].body) === 'invoices:read', 'step-up must start from a read-only token request');
    const voidArgs = { name: 'void_invoice', arguments: { invoiceId: args.invoice, reason: 'interop step-up (TypeScript SDK)' } };
    let r;
    let via = 'the SDK\'s own up-scoping';
    try {
      r = await client.callTool(voidArgs);
    } catch (e) {
      // SDK 1.32.2: on 403 insufficient_scope the transport re-runs auth() with the challenged
      // scope, but fetchToken() builds the client-credentials request from
      // provider.clientMetadata.scope (the configured scope), so the same read-only scope is
      // requested again and the call fails. Verify that this is what happened (so the README
      // stays true), then step up the way an application must with this SDK version: a new
      // provider configured with the union of the granted and the challenged scopes.
      assert(/403 after trying upscoping/.test(String(e?.message)), `unexpected error: ${e?.message}`);
      const retried = okTokens().slice(tokensBefore);
      check(`SDK up-scoping re-requested scope="${tokenScopeFromForm(retried[0]?.body)}" (its configured scope, not the challenged one: known SDK limitation)`,
        retried.length === 1 && tokenScopeFromForm(retried[0].body) === 'invoices:read');
      const fch = parseChallenge(log.filter((x) => isMcp(x) && x.status === 403).at(-1).challenge);
      const union = [...new Set([...args.scope.split(' '), ...fch.params.scope.split(' ')])].join(' ');
      const provider2 = new ClientCredentialsProvider({ clientId: c.id, clientSecret: c.secret, scope: union, expectedIssuer: args.issuer, clientName: 'gatehouse-interop-ts' });
      const client2 = new Client({ name: 'gatehouse-interop-ts', version: '1.0.0' });
      await client2.connect(new StreamableHTTPClientTransport(new URL(args.url), { authProvider: provider2, fetch: recordingFetch }));
      r = await client2.callTool(voidArgs);
      await client2.close();
      via = `application-level step-up (new provider, scope="${union}")`;
    }
    const forbidden = log.find((e) => isMcp(e) && e.status === 403);
    assert(forbidden, 'no 403 was observed before the void succeeded');
    const fch = parseChallenge(forbidden.challenge);
    check(`403 challenge: error=${fch.params.error} scope="${fch.params.scope}"`, fch.params.error === 'insufficient_scope' && fch.params.scope?.split(' ').includes('invoices:write') && !!fch.params.resource_metadata);
    const last = okTokens().at(-1);
    const f2 = new URLSearchParams(last.body);
    check(`token with scope="${f2.get('scope')}" resource=${f2.get('resource')} via ${via}`, f2.get('scope')?.split(' ').includes('invoices:write') && f2.get('resource') === args.url);
    const sc = r.structuredContent ?? {};
    check(`void_invoice after step-up → ${JSON.stringify(sc)}`, !r.isError && JSON.stringify(sc).toLowerCase().includes('void'));
  } else {
    throw new Error(`unknown scenario ${args.scenario}`);
  }
  await client.close();
  console.log('OK');
} catch (e) {
  console.error('FAILED:', e?.message ?? e);
  for (const e2 of log) console.error(`  ${e2.method} ${e2.url.href} → ${e2.status}${e2.challenge ? ` [${e2.challenge}]` : ''}${e2.url.pathname === '/token' ? ` form: ${e2.body}` : ''}`);
  process.exit(1);
}

// Scripted HTTP scenarios: what the official clients do not show (status codes, challenges),
// what they cannot do (2026-07-28 requests, forged tokens), and the server side of step-up.
//
//   node scenarios/http-checks.mjs NAME
//
// Inputs come from the environment set by interop/run:
//   MCP_JWT, MCP_OPAQUE, MCP_FORGE  Gatehouse (`gatehouse serve`) MCP URLs per configuration
//   AS_JWT, AS_OPAQUE               oidc-provider issuers (JWT / opaque access tokens)
//   FORGE_TOKENS                    JSON file of forged tokens (as/forge.mjs)
//   FIXTURE_URL, PROXY_URL          conformance fixture server, direct and through the proxy
// Exits 0 when every check holds.

import { readFileSync } from 'node:fs';

import { OTHER_RESOURCE } from '../as/clients.mjs';
import { assert, check, parseChallenge } from '../lib/assert.mjs';
import {
  expectInvalidToken, getToken, metadataUrlOf, modern, post, revoke, rpc, toolResult,
} from '../lib/http.mjs';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing environment variable ${k}`);
  return v;
};

const lookup = (invoiceId) => rpc('tools/call', { name: 'lookup_invoice', arguments: { invoiceId } });

const scenarios = {
  // A14, A15, A20, A24 and the RFC 9728 document, against the JWT configuration.
  async challenges() {
    const url = env('MCP_JWT');
    const meta = metadataUrlOf(url);
    const doc = await (await fetch(meta)).json();
    check(`PRM resource=${doc.resource}`, doc.resource === url);
    check(`PRM authorization_servers=${JSON.stringify(doc.authorization_servers)}`, doc.authorization_servers?.[0] === env('AS_JWT'));
    check(`PRM scopes_supported=${JSON.stringify(doc.scopes_supported)}`, doc.scopes_supported?.includes('invoices:read'));

    const none = await post(url, rpc('tools/list'));
    const c = parseChallenge(none.challenge);
    check(`no token → ${none.status}, resource_metadata, scope="${c.params.scope}", no error=`,
      none.status === 401 && c.scheme === 'bearer' && c.params.resource_metadata === meta && c.params.scope === 'invoices:read' && c.params.error === undefined);

    const { token } = await getToken(env('AS_JWT'), 'billing-reader', { resource: url });
    const q = new URL(url);
    q.searchParams.set('access_token', token);
    const query = await post(q.href, rpc('tools/list'));
    check(`token in the query string only → ${query.status} (ignored, A24)`, query.status === 401);
    const lower = await post(url, rpc('tools/list'), { headers: { authorization: `bearer ${token}` } });
    check(`"bearer" in lower case → ${lower.status} (scheme is case-insensitive)`, lower.status === 200);
    const empty = await post(url, rpc('tools/list'), { headers: { authorization: 'Bearer ' } });
    check(`empty bearer → ${empty.status} error="${parseChallenge(empty.challenge).params.error}"`, empty.status === 400 && parseChallenge(empty.challenge).params.error === 'invalid_request');
    const ok = await post(url, lookup('INV-2041'), { token });
    check(`valid token → ${ok.status}, ${JSON.stringify(toolResult(ok))}`, ok.status === 200 && toolResult(ok)?.invoiceId === 'INV-2041');
  },

  // Step-up driven by hand on the opaque (introspection) configuration, so that the server's
  // side is proven independently of any client library (A17, A18).
  async stepup() {
    const url = env('MCP_OPAQUE');
    const issuer = env('AS_OPAQUE');
    const read = await getToken(issuer, 'billing-agent', { scope: 'invoices:read', resource: url });
    const voidCall = rpc('tools/call', { name: 'void_invoice', arguments: { invoiceId: 'INV-2042', reason: 'interop step-up (scripted)' } });
    const denied = await post(url, voidCall, { token: read.token });
    const c = parseChallenge(denied.challenge);
    check(`read-only token → void_invoice → ${denied.status} error="${c.params.error}" scope="${c.params.scope}"`,
      denied.status === 403 && c.params.error === 'insufficient_scope' && c.params.scope?.split(' ').includes('invoices:write') && c.params.resource_metadata === metadataUrlOf(url));
    const write = await getToken(issuer, 'billing-agent', { scope: c.params.scope, resource: url });
    check(`new token granted scope="${write.scope}"`, write.scope?.split(' ').includes('invoices:write'));
    const ok = await post(url, voidCall, { token: write.token });
    check(`void_invoice with the new token → ${ok.status} ${JSON.stringify(toolResult(ok))}`, ok.status === 200 && !ok.json?.result?.isError);
    const again = await post(url, lookup('INV-2042'), { token: write.token });
    check(`INV-2042 is now ${toolResult(again)?.status}`, toolResult(again)?.status === 'void');
  },

  // Protocol 2026-07-28: per-request envelope with MCP-Protocol-Version, Mcp-Method, Mcp-Name
  // and params._meta; Gatehouse's checks apply the same way.
  async v20260728() {
    const url = env('MCP_JWT');
    const { token } = await getToken(env('AS_JWT'), 'billing-reader', { resource: url });
    const list = modern('tools/list');
    const l = await post(url, list.body, { token, headers: list.headers, protocol: '2026-07-28' });
    const names = (l.json?.result?.tools ?? []).map((t) => t.name);
    check(`2026-07-28 tools/list → ${l.status} [${names.join(', ')}]`, l.status === 200 && names.includes('lookup_invoice'));
    const call = modern('tools/call', 'lookup_invoice', { name: 'lookup_invoice', arguments: { invoiceId: 'INV-2041' } });
    const r = await post(url, call.body, { token, headers: call.headers, protocol: '2026-07-28' });
    check(`2026-07-28 tools/call lookup_invoice → ${r.status} ${JSON.stringify(toolResult(r))}`, r.status === 200 && toolResult(r)?.invoiceId === 'INV-2041');
    const anon = await post(url, call.body, { headers: call.headers, protocol: '2026-07-28' });
    check(`2026-07-28 without a token → ${anon.status}`, anon.status === 401 && parseChallenge(anon.challenge).params.resource_metadata === metadataUrlOf(url));
    const v = modern('tools/call', 'void_invoice', { name: 'void_invoice', arguments: { invoiceId: 'INV-2041' } });
    const denied = await post(url, v.body, { token, headers: v.headers, protocol: '2026-07-28' });
    check(`2026-07-28 void_invoice with invoices:read → ${denied.status} ${parseChallenge(denied.challenge).params.error}`, denied.status === 403 && parseChallenge(denied.challenge).params.error === 'insufficient_scope');
    // Header/body disagreement: the header names a read tool, the body a write tool. It must not
    // be let through on the strength of the header.
    const confused = { body: v.body, headers: { ...v.headers, 'mcp-name': 'lookup_invoice' } };
    const cf = await post(url, confused.body, { token, headers: confused.headers, protocol: '2026-07-28' });
    check(`Mcp-Name lookup_invoice but body void_invoice → ${cf.status} (refused)`, cf.status === 400 || cf.status === 403);
    const noMeta = rpc('tools/call', { name: 'lookup_invoice', arguments: { invoiceId: 'INV-2041' } });
    const nm = await post(url, noMeta, { token, headers: call.headers, protocol: '2026-07-28' });
    check(`2026-07-28 without params._meta → ${nm.status}`, nm.status === 400);
  },

  // The tenant claim from oidc-provider's extraTokenClaims partitions the data.
  async tenancy() {
    const url = env('MCP_JWT');
    const acme = await getToken(env('AS_JWT'), 'billing-reader', { resource: url });
    const globex = await getToken(env('AS_JWT'), 'globex-agent', { resource: url });
    const g = await post(url, lookup('INV-3001'), { token: globex.token });
    check(`globex → INV-3001 ${JSON.stringify(toolResult(g))}`, g.status === 200 && toolResult(g)?.invoiceId === 'INV-3001');
    const a = await post(url, lookup('INV-3001'), { token: acme.token });
    check(`acme → INV-3001 is not visible (isError=${a.json?.result?.isError})`, a.status === 200 && a.json?.result?.isError === true);
    const a2 = await post(url, lookup('INV-2041'), { token: acme.token });
    const g2 = await post(url, lookup('INV-2041'), { token: globex.token });
    check(`INV-2041 differs per tenant (${toolResult(a2)?.customer} / ${toolResult(g2)?.customer})`,
      toolResult(a2) && toolResult(g2) && JSON.stringify(toolResult(a2)) !== JSON.stringify(toolResult(g2)));
  },

  // Real oidc-provider tokens that are not for this server (A21, A22, A23).
  async 'negative-oidc-jwt'() {
    const url = env('MCP_JWT');
    const issuer = env('AS_JWT');
    const meta = metadataUrlOf(url);
    const good = await getToken(issuer, 'billing-reader', { resource: url });
    const ok = await post(url, lookup('INV-2041'), { token: good.token });
    check(`control: token for this resource → ${ok.status}`, ok.status === 200);
    const other = await getToken(issuer, 'billing-reader', { resource: OTHER_RESOURCE });
    const parts = other.token.split('.');
    check('token for the other resource is a JWT with aud = the other resource',
      parts.length === 3 && JSON.parse(Buffer.from(parts[1], 'base64url')).aud === OTHER_RESOURCE);
    expectInvalidToken('JWT for another resource', await post(url, lookup('INV-2041'), { token: other.token }), meta);
    const bare = await getToken(issuer, 'billing-reader', {});
    check('token requested without resource is opaque (oidc-provider)', bare.token.split('.').length !== 3);
    expectInvalidToken('token without resource (no aud)', await post(url, lookup('INV-2041'), { token: bare.token }), meta);
  },

  async 'negative-oidc-opaque'() {
    const url = env('MCP_OPAQUE');
    const issuer = env('AS_OPAQUE');
    const meta = metadataUrlOf(url);
    const good = await getToken(issuer, 'billing-reader', { resource: url });
    const ok = await post(url, lookup('INV-2041'), { token: good.token });
    check(`control: opaque token for this resource → ${ok.status} (introspected)`, ok.status === 200 && toolResult(ok)?.invoiceId === 'INV-2041');
    const other = await getToken(issuer, 'billing-reader', { resource: OTHER_RESOURCE });
    expectInvalidToken('opaque token for another resource (introspection aud)', await post(url, lookup('INV-2041'), { token: other.token }), meta);
    const doomed = await getToken(issuer, 'billing-reader', { resource: url });
    await revoke(issuer, 'billing-reader', doomed.token);
    expectInvalidToken('revoked opaque token (introspection active:false)', await post(url, lookup('INV-2041'), { token: doomed.token }), meta);
    expectInvalidToken('made-up opaque token', await post(url, lookup('INV-2041'), { token: 'x'.repeat(43) }), meta);
    // Last: introspection says active:true with no aud for this one; it was not issued for this
    // server (RFC 8707 §2, A22).
    const bare = await getToken(issuer, 'billing-reader', {});
    expectInvalidToken('opaque token without resource (active, no aud)', await post(url, lookup('INV-2041'), { token: bare.token }), meta);
  },

  // Forged tokens from oauth2-mock-server (A16, A21, A22, A23; RFC 9068 §4 typ).
  async 'negative-forged'() {
    const url = env('MCP_FORGE');
    const meta = metadataUrlOf(url);
    const t = JSON.parse(readFileSync(env('FORGE_TOKENS'), 'utf8'));
    const ok = await post(url, lookup('INV-2041'), { token: t.valid });
    check(`control: well-formed forged-issuer token → ${ok.status}`, ok.status === 200 && toolResult(ok)?.invoiceId === 'INV-2041');
    for (const name of ['wrong_issuer', 'expired', 'typ_jwt', 'unknown_kid', 'wrong_audience', 'no_audience', 'not_yet_valid']) {
      expectInvalidToken(name, await post(url, lookup('INV-2041'), { token: t[name] }), meta);
    }
  },

  // DNS rebinding on the conformance fixture server: rejected by the Host/Origin guard even
  // with a valid token (the suite's own check passes on any 4xx, a 401 included).
  async 'dns-rebinding-guard'() {
    const proxy = env('PROXY_URL');
    const direct = env('FIXTURE_URL');
    const proxyHost = new URL(proxy).host;
    const { token } = await getToken(env('AS_JWT'), 'billing-reader', { resource: proxy });
    const init = rpc('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'rebinding', version: '1' } });
    for (const [label, url, auth] of [['through the proxy (token injected)', proxy, undefined], ['direct with a valid token', direct, token], ['direct without a token', direct, undefined]]) {
      const host = await post(url, init, { token: auth, headers: { host: 'evil.example.com', origin: 'http://evil.example.com' } });
      check(`${label}: Host/Origin evil.example.com → ${host.status} (guard: 421 Misdirected Request for a foreign Host)`, host.status === 421 && !host.challenge);
      const origin = await post(url, init, { token: auth, headers: { host: proxyHost, origin: 'http://evil.example.com' } });
      check(`${label}: valid Host, Origin evil.example.com → ${origin.status} (B2: 403)`, origin.status === 403 && !origin.challenge);
    }
    const good = await post(proxy, init, { headers: { origin: `http://${proxyHost}` } });
    check(`through the proxy, own Origin → ${good.status}`, good.status === 200);
    const anon = await post(direct, init, { headers: { host: proxyHost } });
    check(`direct, valid Host, no token → ${anon.status} (the guard passed; the token check answered)`, anon.status === 401);
  },
};

const name = process.argv[2];
if (!scenarios[name]) {
  console.error(`unknown scenario ${name}; one of: ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
try {
  await scenarios[name]();
  console.log('OK');
} catch (e) {
  console.error('FAILED:', e?.message ?? e);
  process.exit(1);
}

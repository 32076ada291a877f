// DPoP (RFC 9449) end to end through `gatehouse serve`, driven by implementations nobody on the
// team wrote: oauth4webapi (panva) makes the key, the proofs, the token request and the nonce
// retries; oidc-provider issues the DPoP-bound JWT; the official MCP TypeScript SDK speaks MCP.
//
//   node clients/ts-dpop.mjs --url MCP_URL --issuer AS_ISSUER --client ID --scenario NAME
//
// Scenarios:
//   mcp       a token bound to a fresh ES256 key (client credentials, `resource` = MCP_URL);
//             initialize, tools/list and tools/call through the SDK's Streamable HTTP transport,
//             whose `fetch` is oauth4webapi's protectedResourceRequest: `Authorization: DPoP`
//             and a fresh proof (htm, htu, ath, jti) per request. The first request has no
//             nonce yet: Gatehouse answers 401 use_dpop_nonce + DPoP-Nonce, the library caches
//             it and the request is retried once; every later proof carries it.
//   bearer    the bound token sent as `Bearer` (protectedResourceRequest without a DPoP handle)
//             → 401 invalid_token, with `DPoP algs` beside the Bearer challenge.
//   htu       the library's proof for another URL on the same origin, delivered to MCP_URL
//             → 401 invalid_dpop_proof.
//   replay    a request that succeeded, sent again byte for byte (same proof)
//             → 401 invalid_dpop_proof; a fresh proof right after succeeds.
//   missing   `Authorization: DPoP` with the proof header removed → 401 invalid_dpop_proof.
//   metadata  the RFC 9728 document, read with oauth4webapi's resource discovery: names the
//             issuer, `dpop_signing_alg_values_supported` (with ES256, and some algorithm the
//             AS takes too), `dpop_bound_access_tokens_required: true`.
//
// Every negative first makes the same request correctly and expects 200, so a refusal is due
// to the one thing changed. Refusals are parsed by oauth4webapi (WWWAuthenticateChallengeError):
// a challenge it could not parse would not throw, and the scenario would fail. With
// --server-log (Gatehouse's log, refusals at debug), the reason Gatehouse logged for that
// request (by its x-request-id) must be the check the scenario aims at — clients all get the
// same `invalid_dpop_proof`, so only the log tells an htu refusal from, say, a nonce one.
// Exits 0 on success; prints what it checked. Nothing here prints a token.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import * as oauth from 'oauth4webapi';

import { client as registered } from '../as/clients.mjs';
import { assert, check } from '../lib/assert.mjs';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    issuer: { type: 'string' },
    client: { type: 'string', default: 'billing-dpop' },
    scope: { type: 'string', default: 'invoices:read' },
    scenario: { type: 'string', default: 'mcp' },
    invoice: { type: 'string', default: 'INV-2041' },
    'server-log': { type: 'string' },
  },
});
assert(args.url && args.issuer, 'usage: ts-dpop.mjs --url MCP_URL --issuer AS_ISSUER [--client ID] --scenario NAME');

const mcpUrl = new URL(args.url);
// Everything here is loopback http: oauth4webapi insists on https unless told otherwise.
const insecure = { [oauth.allowInsecureRequests]: true };
const b64json = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
const sha256b64u = (s) => createHash('sha256').update(s).digest('base64url');

// Every HTTP exchange oauth4webapi makes (it takes this as its `fetch`): method, URL, the
// Authorization scheme, the decoded proof, the status, challenge and DPoP-Nonce of the answer.
const log = [];
const recordingFetch = async (url, init) => {
  const headers = new Headers(init.headers);
  const proof = headers.get('dpop');
  const response = await fetch(url, init);
  log.push({
    method: init.method,
    url: new URL(url),
    scheme: headers.get('authorization')?.split(' ')[0],
    proof,
    claims: proof ? b64json(proof.split('.')[1]) : undefined,
    header: proof ? b64json(proof.split('.')[0]) : undefined,
    status: response.status,
    challenge: response.headers.get('www-authenticate'),
    nonce: response.headers.get('dpop-nonce'),
    requestId: response.headers.get('x-request-id'),
  });
  return response;
};

const c = registered(args.client);
const asMeta = await oauth.processDiscoveryResponse(
  new URL(args.issuer),
  await oauth.discoveryRequest(new URL(args.issuer), { algorithm: 'oauth2', ...insecure }),
);
const oauthClient = { client_id: c.id };
const clientAuth = oauth.ClientSecretBasic(c.secret);
// A fresh key per run (private part not extractable): the token is bound to it.
const keyPair = await oauth.generateKeyPair('ES256');
const DPoP = oauth.DPoP(oauthClient, keyPair);

/** A client-credentials token for MCP_URL, bound to the key (or not, without `dpop`). */
async function token({ dpop = true } = {}) {
  const response = await oauth.clientCredentialsGrantRequest(
    asMeta, oauthClient, clientAuth, { scope: args.scope, resource: args.url },
    { ...(dpop ? { DPoP } : {}), ...insecure, [oauth.customFetch]: recordingFetch },
  );
  return oauth.processClientCredentialsResponse(asMeta, oauthClient, response);
}

/**
 * A request to MCP_URL through oauth4webapi's protectedResourceRequest. Returns the Response,
 * or the WWWAuthenticateChallengeError it threw for a challenge (its `response` and parsed
 * `cause`). One retry when the library recognises use_dpop_nonce (it has cached the nonce).
 */
async function resource(accessToken, { method = 'POST', url = mcpUrl, headers = {}, body, dpop = DPoP, fetchImpl = recordingFetch, retryNonce = true, signal } = {}) {
  const send = () => oauth.protectedResourceRequest(accessToken, method, url, headers, body, {
    ...(dpop ? { DPoP: dpop } : {}), ...insecure, [oauth.customFetch]: fetchImpl, signal,
  });
  try {
    return await send();
  } catch (e) {
    if (retryNonce && oauth.isDPoPNonceError(e)) {
      try {
        return await send();
      } catch (e2) {
        if (e2 instanceof oauth.WWWAuthenticateChallengeError) return e2;
        throw e2;
      }
    }
    if (e instanceof oauth.WWWAuthenticateChallengeError) return e;
    throw e;
  }
}

const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' };
let rpcId = 1;
const initializeBody = () => JSON.stringify({
  jsonrpc: '2.0', id: rpcId++, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'gatehouse-interop-dpop', version: '1.0.0' } },
});

/** The JSON-RPC message of a response (JSON or one SSE event). */
async function rpcOf(response) {
  const text = await response.text();
  if ((response.headers.get('content-type') ?? '').includes('text/event-stream')) {
    const data = text.split('\n').filter((l) => l.startsWith('data:') && l.slice(5).trim());
    return data.length ? JSON.parse(data.at(-1).slice(5)) : null;
  }
  return JSON.parse(text);
}

/**
 * The reason Gatehouse logged for refusing the request with this x-request-id. The line is
 * written as the response goes out, so it may land a moment after the client has the answer:
 * polled for at most 5 s. Undefined without --server-log.
 */
async function loggedReason(requestId) {
  if (!args['server-log']) return undefined;
  assert(requestId, 'the refusal has no x-request-id');
  const re = new RegExp(`request_id="${requestId}".*request refused reason="([^"]+)"`);
  for (let i = 0; i < 100; i++) {
    const m = re.exec(await readFile(args['server-log'], 'utf8'));
    if (m) return m[1];
    await delay(50);
  }
  throw new Error(`no refusal logged for request ${requestId} in ${args['server-log']}`);
}

/** A correct request with the bound token: 200 and an initialize result (nonce handled). */
async function control(accessToken, what) {
  const r = await resource(accessToken, { headers: mcpHeaders, body: initializeBody() });
  assert(r instanceof Response, `${what}: control request refused: ${r.status} ${r.response?.headers.get('www-authenticate')}`);
  const msg = await rpcOf(r);
  check(`${what}: control, the same request done right → ${r.status} (server ${msg?.result?.serverInfo?.name})`, r.status === 200 && !!msg?.result?.serverInfo);
}

/**
 * A refusal: 401, the JSON `error`, and the challenges as oauth4webapi parsed them — for
 * invalid_token a Bearer challenge with it and `resource_metadata` plus a bare DPoP challenge
 * naming the algorithms; for DPoP errors a DPoP challenge with the error and the algorithms.
 */
async function expectRefusal(what, r, error, reason) {
  assert(r instanceof oauth.WWWAuthenticateChallengeError,
    `${what}: expected oauth4webapi to report a WWW-Authenticate challenge, got ${r instanceof Response ? `HTTP ${r.status} [${r.headers.get('www-authenticate')}]` : r}`);
  const body = await r.response.json().catch(() => ({}));
  const byScheme = (s) => r.cause.filter((ch) => ch.scheme === s);
  const [dpopCh] = byScheme('dpop');
  const algs = dpopCh?.parameters.algs?.split(' ') ?? [];
  let ok = r.status === 401 && body.error === error && algs.includes('ES256');
  if (error === 'invalid_token') {
    const [bearer] = byScheme('bearer');
    ok &&= bearer?.parameters.error === 'invalid_token' && !!bearer.parameters.resource_metadata && dpopCh.parameters.error === undefined;
  } else {
    ok &&= dpopCh?.parameters.error === error;
  }
  check(`${what} → ${r.status} error=${body.error}; WWW-Authenticate: ${r.response.headers.get('www-authenticate')}`, ok);
  const logged = await loggedReason(r.response.headers.get('x-request-id'));
  if (logged !== undefined) check(`Gatehouse logged the reason ${logged}`, logged === reason);
  return algs;
}

function dumpLog() {
  for (const e of log) {
    const cl = e.claims ? ` proof{htm=${e.claims.htm} htu=${e.claims.htu} nonce=${e.claims.nonce ? 'yes' : 'no'} ath=${e.claims.ath ? 'yes' : 'no'}}` : '';
    console.error(`  ${e.method} ${e.url.href} [${e.scheme ?? '-'}]${cl} → ${e.status}${e.challenge ? ` [${e.challenge}]` : ''}`);
  }
}

try {
  if (args.scenario === 'metadata') {
    const r = await oauth.resourceDiscoveryRequest(mcpUrl, insecure);
    const prm = await oauth.processResourceDiscoveryResponse(mcpUrl, r);
    const algs = prm.dpop_signing_alg_values_supported ?? [];
    check(`protected-resource metadata for ${prm.resource}: authorization_servers ${JSON.stringify(prm.authorization_servers)}`, prm.authorization_servers?.includes(args.issuer));
    check(`dpop_signing_alg_values_supported ${JSON.stringify(algs)} (includes ES256, the client's key)`, Array.isArray(algs) && algs.includes('ES256'));
    const common = algs.filter((a) => asMeta.dpop_signing_alg_values_supported?.includes(a));
    check(`an algorithm both the AS ${JSON.stringify(asMeta.dpop_signing_alg_values_supported)} and the resource take: ${common.join(', ')}`, common.length > 0);
    check(`dpop_bound_access_tokens_required=${prm.dpop_bound_access_tokens_required} (the issuer is dpop = "required")`, prm.dpop_bound_access_tokens_required === true);
    console.log('OK');
    process.exit(0);
  }

  // The AS side: this client is registered for DPoP only; a token request without a proof is
  // refused by oidc-provider, one with a proof yields a token bound to our key.
  let refused;
  try {
    await token({ dpop: false });
  } catch (e) {
    refused = e;
  }
  check(`oidc-provider: ${c.id} without a proof → ${refused?.status ?? 'no error'} ${refused?.error ?? ''}`, refused instanceof oauth.ResponseBodyError && refused.status === 400);
  const tok = await token();
  const jkt = await DPoP.calculateThumbprint();
  const claims = b64json(tok.access_token.split('.')[1]);
  const jwtHeader = b64json(tok.access_token.split('.')[0]);
  check(`token_type=${tok.token_type}, typ=${jwtHeader.typ}, aud=${claims.aud}, cnf.jkt = our key's thumbprint`,
    tok.token_type === 'dpop' && jwtHeader.typ === 'at+jwt' && claims.aud === args.url && claims.cnf?.jkt === jkt);
  const tokenReq = log.at(-1);
  check(`token request carried a proof (htm=${tokenReq.claims?.htm}, htu=${tokenReq.claims?.htu}, no ath)`, tokenReq.claims?.htm === 'POST' && tokenReq.claims.htu === asMeta.token_endpoint && tokenReq.claims.ath === undefined);
  const at = tok.access_token;
  const first = log.length;

  if (args.scenario === 'mcp') {
    // The SDK's transport asks this for every HTTP request (POST, the optional GET stream,
    // DELETE on close); oauth4webapi adds `Authorization: DPoP` and a fresh proof to each.
    // A challenge other than use_dpop_nonce goes back to the SDK as the 401 it is.
    const dpopFetch = async (input, init = {}) => {
      const url = new URL(typeof input === 'string' ? input : input.href ?? input.url);
      const r = await resource(at, { method: init.method ?? 'GET', url, headers: init.headers, body: init.body, signal: init.signal ?? undefined });
      return r instanceof Response ? r : r.response;
    };
    const transport = new StreamableHTTPClientTransport(mcpUrl, { fetch: dpopFetch });
    const client = new Client({ name: 'gatehouse-interop-dpop', version: '1.0.0' });
    await client.connect(transport);
    check(`initialize through the SDK: protocol ${transport.protocolVersion}`, ['2025-06-18', '2025-11-25'].includes(transport.protocolVersion));
    const tools = await client.listTools();
    const names = tools.tools.map((t) => t.name).sort();
    check(`tools/list → ${names.join(', ')}`, names.includes('lookup_invoice'));
    const call = await client.callTool({ name: 'lookup_invoice', arguments: { invoiceId: args.invoice } });
    check(`tools/call lookup_invoice ${args.invoice} → ${JSON.stringify(call.structuredContent)}`, !call.isError && JSON.stringify(call.structuredContent ?? {}).includes(args.invoice));
    await client.close();

    const mcp = log.slice(first);
    const [nonceless, retried] = mcp;
    const nch = nonceless?.challenge ?? '';
    check(`first MCP request (proof without nonce) → ${nonceless?.status} [${nch}], DPoP-Nonce ${nonceless?.nonce ? 'given' : 'missing'}`,
      nonceless?.status === 401 && /^DPoP\b/.test(nch) && /error="use_dpop_nonce"/.test(nch) && !!nonceless.nonce && nonceless.claims && nonceless.claims.nonce === undefined);
    const why = await loggedReason(nonceless.requestId);
    if (why !== undefined) check(`Gatehouse logged the reason ${why}`, why === 'dpop.use_nonce');
    check(`retried by oauth4webapi with that nonce → ${retried?.status}`, retried?.status === 200 && retried.claims?.nonce === nonceless.nonce && retried.claims.jti !== nonceless.claims.jti);
    const rest = mcp.slice(1);
    const nonces = mcp.filter((e) => e.status === 401).length;
    check(`exactly one use_dpop_nonce round trip in ${mcp.length} requests (${mcp.map((e) => `${e.method} ${e.status}`).join(', ')})`, nonces === 1);
    const jtis = new Set(mcp.map((e) => e.claims?.jti));
    const ath = sha256b64u(at);
    check('every MCP request: Authorization DPoP, a proof with htm = its method, htu = the resource, ath = SHA-256(token), the nonce, a jti of its own',
      mcp.every((e) => e.scheme === 'DPoP' && e.header?.typ === 'dpop+jwt' && e.header.alg === 'ES256' && e.claims.htm === e.method && e.claims.htu === args.url && e.claims.ath === ath) &&
      rest.every((e) => e.claims.nonce === nonceless.nonce) && jtis.size === mcp.length);
    check(`after the retry, every POST answered 200 or 202`, rest.filter((e) => e.method === 'POST').every((e) => e.status === 200 || e.status === 202));
  } else if (args.scenario === 'bearer') {
    await control(at, 'bound token with its proof');
    // No DPoP handle: oauth4webapi sends the same token as `Authorization: Bearer`.
    const r = await resource(at, { headers: mcpHeaders, body: initializeBody(), dpop: null });
    assert(log.at(-1).scheme === 'Bearer' && !log.at(-1).proof, 'the library did not send the token as Bearer');
    const algs = await expectRefusal('the DPoP-bound token as Bearer', r, 'invalid_token', 'invalid.dpop_bound_as_bearer');
    const prm = await oauth.processResourceDiscoveryResponse(mcpUrl, await oauth.resourceDiscoveryRequest(mcpUrl, insecure));
    check(`the challenge's algs (${algs.join(' ')}) = the metadata's dpop_signing_alg_values_supported`, algs.join(' ') === (prm.dpop_signing_alg_values_supported ?? []).join(' '));
  } else if (args.scenario === 'htu') {
    await control(at, 'proof for the resource');
    // The library signs a proof for another URL of the same origin (so the cached nonce is
    // current); the request goes to the resource itself.
    const other = new URL('/other/mcp', mcpUrl);
    const redirect = (_url, init) => recordingFetch(mcpUrl.href, init);
    const r = await resource(at, { url: other, headers: mcpHeaders, body: initializeBody(), fetchImpl: redirect, retryNonce: false });
    const sent = log.at(-1);
    assert(sent.url.href === mcpUrl.href && sent.claims.htu === other.href && sent.claims.nonce, `the proof was not what the scenario means to send: ${JSON.stringify(sent.claims)}`);
    await expectRefusal(`a proof with htu=${sent.claims.htu} (and the current nonce) sent to ${mcpUrl.href}`, r, 'invalid_dpop_proof', 'dpop.htu');
  } else if (args.scenario === 'replay') {
    // Keep the bytes of a request that succeeds, then send them again unchanged.
    let captured;
    const capture = async (url, init) => {
      const res = await recordingFetch(url, init);
      captured = { url, init: { method: init.method, headers: init.headers, body: init.body } };
      return res;
    };
    const ok = await resource(at, { headers: mcpHeaders, body: initializeBody(), fetchImpl: capture });
    assert(ok instanceof Response, `first use of the proof refused: ${ok.status} ${ok.response?.headers.get('www-authenticate')}`);
    check(`first use of the proof (jti ${log.at(-1).claims.jti.slice(0, 8)}…) → ${ok.status}`, ok.status === 200);
    const again = await recordingFetch(captured.url, captured.init);
    assert(log.at(-1).proof === log.at(-2).proof, 'the replay did not carry the same proof');
    // The library's own challenge parsing of the replay's answer: protectedResourceRequest with
    // a fetch that hands back the answer already received.
    const r = await resource(at, { headers: mcpHeaders, body: captured.init.body, dpop: null, fetchImpl: async () => again, retryNonce: false });
    await expectRefusal('the same proof again (replay)', r, 'invalid_dpop_proof', 'dpop.replay');
    await control(at, 'after the replay, a fresh proof');
  } else if (args.scenario === 'missing') {
    await control(at, 'with the proof');
    const strip = (url, init) => {
      const h = { ...init.headers };
      delete h.dpop;
      return recordingFetch(url, { ...init, headers: h });
    };
    const r = await resource(at, { headers: mcpHeaders, body: initializeBody(), fetchImpl: strip, retryNonce: false });
    assert(log.at(-1).scheme === 'DPoP' && !log.at(-1).proof, 'the request still had a proof, or not the DPoP scheme');
    await expectRefusal('Authorization: DPoP without a DPoP header', r, 'invalid_dpop_proof', 'dpop.missing');
  } else {
    throw new Error(`unknown scenario ${args.scenario}`);
  }
  console.log('OK');
} catch (e) {
  console.error('FAILED:', e?.message ?? e);
  dumpLog();
  process.exit(1);
}

// CORS, judged by Chromium: a page on another origin talks to Gatehouse and to the development
// authorization server with nothing but `fetch`, as a browser-based MCP client does.
//
//   node browser/cors.mjs            (GATEHOUSE = path of the gatehouse binary)
//
// Started here, all on 127.0.0.1 with ports the kernel picks: two page origins (one allowed,
// one not), `gatehouse dev-issuer` and `gatehouse serve` with `server.cors = true`, the allowed
// origin in `allowed_origins` and stateful sessions (so that `Mcp-Session-Id` travels too).
//
// From the allowed origin the page must be able to: read the 401's `WWW-Authenticate`; fetch
// the protected-resource metadata and the authorization server's metadata; get a token at the
// token endpoint; initialize and read `Mcp-Session-Id`; send requests whose preflights carry
// `Authorization`, `MCP-Protocol-Version`, `Mcp-Session-Id`, `Mcp-Method` and `Mcp-Name`; call a
// tool. Every one of those requests with a non-safelisted header needs a preflight that
// succeeds, so an `OPTIONS` answered `401` (or without the header allowed) fails the step in the
// browser. From the other origin, the same requests must fail in the browser.

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { OUT, check, launch, pageServer, run, shot, startReady } from './lib.mjs';

const GATEHOUSE = process.env.GATEHOUSE;
if (!GATEHOUSE) throw new Error('GATEHOUSE (the gatehouse binary) is not set');

const PAGE = `<!doctype html><meta charset="utf-8"><title>CORS probe</title>
<style>body{font:14px system-ui;margin:24px}li{margin:4px 0}.ok{color:#070}.no{color:#a00}</style>
<h1>Browser client on <span id="origin"></span></h1><ol id="steps"></ol>
<script>document.getElementById('origin').textContent = location.origin;
window.step = (text, ok) => { const li = document.createElement('li'); li.className = ok ? 'ok' : 'no';
  li.textContent = (ok ? '✔ ' : '✘ ') + text; document.getElementById('steps').append(li); };</script>`;

const CLIENT = { id: 'browser-app', secret: 'browser-secret' };

await run(async () => {
  const allowed = await pageServer(PAGE);
  const other = await pageServer(PAGE);

  const issuerConfig = path.join(OUT, 'cors-issuer.toml');
  writeFileSync(
    issuerConfig,
    `[[clients]]
id = "${CLIENT.id}"
secret = "${CLIENT.secret}"
allowed_scopes = ["invoices:read"]
tenant = "acme"
`,
  );
  const issuer = await startReady(
    'cors-issuer',
    GATEHOUSE,
    ['dev-issuer', '--listen', '127.0.0.1:0', '--config', issuerConfig],
    { ready: /token endpoint: (http:\/\/127\.0\.0\.1:\d+)\/token/ },
  );
  const issuerUrl = issuer.match[1];

  const serverConfig = path.join(OUT, 'cors-server.toml');
  writeFileSync(
    serverConfig,
    `[server]
listen = "127.0.0.1:0"
resource_name = "Gatehouse Billing (browser CORS)"
cors = true
allowed_origins = ["${allowed.origin}"]
stateful_sessions = true

[[auth.issuers]]
issuer = "${issuerUrl}"

[policy]
route_scopes = ["invoices:read"]

[policy.tools]
void_invoice = ["invoices:write"]

[tenancy]
claim = "tenant"

[database]
url = "sqlite://${path.join(OUT, 'cors.db')}"
seed_demo_data = true

[admin]
listen = "127.0.0.1:0"
`,
  );
  const server = await startReady('cors-gatehouse', GATEHOUSE, ['serve', '--config', serverConfig], {
    ready: /gatehouse ready mcp=(\S+)/,
    env: { RUST_LOG: 'info,rmcp=warn' },
  });
  const mcp = server.match[1];
  console.log(`allowed origin ${allowed.origin}, other origin ${other.origin}, MCP ${mcp}`);

  const browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
  // What Chromium saw, for the one header no script can read without its exposure.
  const seen = [];
  page.on('response', (r) => seen.push({ url: r.url(), status: r.status(), headers: r.headers() }));

  await page.goto(allowed.origin);
  const got = await page.evaluate(browserClient, { mcp, client: CLIENT });
  for (const [what, ok, detail] of got.steps) check(what, ok, detail);
  // MCP-Protocol-Version: when a response carried it, the script could read it (it is exposed).
  const sentVersion = seen.find((r) => r.url === mcp && r.headers['mcp-protocol-version']);
  if (sentVersion) check('MCP-Protocol-Version readable by the page', got.protocolVersionRead !== null);
  else check('MCP-Protocol-Version listed in Access-Control-Expose-Headers', seen.some(
    (r) => r.url === mcp && /mcp-protocol-version/i.test(r.headers['access-control-expose-headers'] ?? ''),
  ));
  await shot(page, 'cors-allowed-origin');

  await page.goto(other.origin);
  const refused = await page.evaluate(otherOrigin, { mcp, token: got.token });
  for (const [what, ok, detail] of refused) check(what, ok, detail);
  await shot(page, 'cors-other-origin');

  // What the refused origin's preflight got: never a 401 (no token is the problem there), and
  // no Access-Control-Allow-Origin. Sent by Node, since the browser hides preflights from
  // scripts; the browser's verdict is the check above.
  for (const origin of [other.origin, allowed.origin]) {
    const r = await fetch(mcp, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type, mcp-protocol-version, mcp-session-id, mcp-method, mcp-name',
      },
    });
    const allowedOrigin = r.headers.get('access-control-allow-origin');
    check(`preflight from ${origin === allowed.origin ? 'the allowed' : 'the other'} origin: ${r.status}, not 401`, r.status !== 401);
    check(`… allows ${origin === allowed.origin ? 'that origin' : 'no origin'}`,
      origin === allowed.origin ? allowedOrigin === origin : allowedOrigin === null, allowedOrigin);
  }

  await browser.close();
  allowed.close();
  other.close();
});

/** Runs in the page on the allowed origin: the steps a browser MCP client takes. */
async function browserClient({ mcp, client }) {
  const steps = [];
  const note = (what, ok, detail) => {
    steps.push([what, ok, detail]);
    window.step(what, ok);
  };
  const json = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const meta = {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientCapabilities': {},
    'io.modelcontextprotocol/clientInfo': { name: 'cors-probe', version: '1' },
  };
  const out = { steps, token: null, protocolVersionRead: null };
  try {
    // 1. No token: the challenge must be readable (exposed) to find the metadata.
    let r = await fetch(mcp, {
      method: 'POST',
      headers: { ...json, 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    const www = r.headers.get('www-authenticate');
    note('401 without a token, WWW-Authenticate readable', r.status === 401 && /^Bearer /.test(www ?? ''), www);
    const prmUrl = /resource_metadata="([^"]+)"/.exec(www ?? '')?.[1];

    // 2. The protected-resource metadata (RFC 9728), cross-origin.
    r = await fetch(prmUrl, { headers: { 'mcp-protocol-version': '2025-11-25' } });
    const prm = await r.json();
    note('protected-resource metadata fetched', r.ok && prm.resource === mcp, prm);

    // 3. The authorization server's metadata (RFC 8414), cross-origin.
    const as = prm.authorization_servers[0];
    r = await fetch(`${as}/.well-known/oauth-authorization-server`);
    const asm = await r.json();
    note('authorization server metadata fetched', r.ok && asm.issuer === as, asm);

    // 4. A token from the token endpoint (client credentials, RFC 8707 resource); the Basic
    //    credentials make this a preflighted request to the authorization server.
    r = await fetch(asm.token_endpoint, {
      method: 'POST',
      headers: {
        authorization: `Basic ${btoa(`${client.id}:${client.secret}`)}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: mcp, scope: 'invoices:read' }),
    });
    const tok = await r.json();
    out.token = tok.access_token ?? null;
    note('token from the token endpoint', r.ok && typeof tok.access_token === 'string', { status: r.status, error: tok.error });
    const auth = { authorization: `Bearer ${out.token}` };

    // 5. initialize (2025-11-25, stateful): Mcp-Session-Id must be readable.
    r = await fetch(mcp, {
      method: 'POST',
      headers: { ...json, ...auth, 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({
        jsonrpc: '2.0', id: 1, method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'cors-probe', version: '1' } },
      }),
    });
    const session = r.headers.get('mcp-session-id');
    out.protocolVersionRead = r.headers.get('mcp-protocol-version');
    await r.text();
    note('initialize with a token, Mcp-Session-Id readable', r.ok && !!session, { status: r.status, session });

    // 6. In the session: the preflight carries Mcp-Session-Id and MCP-Protocol-Version.
    r = await fetch(mcp, {
      method: 'POST',
      headers: { ...json, ...auth, 'mcp-protocol-version': '2025-11-25', 'mcp-session-id': session },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    note('notifications/initialized in the session (preflight with Mcp-Session-Id)', r.status === 202, r.status);
    r = await fetch(mcp, {
      method: 'POST',
      headers: { ...json, ...auth, 'mcp-protocol-version': '2025-11-25', 'mcp-session-id': session },
      body: JSON.stringify({
        jsonrpc: '2.0', id: 2, method: 'tools/call',
        params: { name: 'lookup_invoice', arguments: { invoiceId: 'INV-2041' } },
      }),
    });
    let text = await r.text();
    note('tools/call lookup_invoice in the session', r.ok && text.includes('INV-2041'), text.slice(0, 300));

    // 7. 2026-07-28: the preflight carries Mcp-Method and Mcp-Name.
    r = await fetch(mcp, {
      method: 'POST',
      headers: {
        ...json, ...auth, 'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call', 'mcp-name': 'lookup_invoice',
      },
      body: JSON.stringify({
        jsonrpc: '2.0', id: 3, method: 'tools/call',
        params: { name: 'lookup_invoice', arguments: { invoiceId: 'INV-2041' }, _meta: meta },
      }),
    });
    text = await r.text();
    note('tools/call at 2026-07-28 (preflight with Mcp-Method, Mcp-Name)', r.ok && text.includes('INV-2041'), text.slice(0, 300));

    // 8. A refusal with a token is readable too: 403 with its step-up challenge.
    r = await fetch(mcp, {
      method: 'POST',
      headers: {
        ...json, ...auth, 'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call', 'mcp-name': 'void_invoice',
      },
      body: JSON.stringify({
        jsonrpc: '2.0', id: 4, method: 'tools/call',
        params: { name: 'void_invoice', arguments: { invoiceId: 'INV-2041', reason: 'x' }, _meta: meta },
      }),
    });
    const stepUp = r.headers.get('www-authenticate') ?? '';
    note('403 insufficient_scope readable, naming invoices:write', r.status === 403 && /insufficient_scope/.test(stepUp) && /invoices:write/.test(stepUp), stepUp);
  } catch (e) {
    note(`request failed in the browser: ${e}`, false, String(e));
  }
  return out;
}

/** Runs in the page on an origin Gatehouse does not allow: every request must fail. */
async function otherOrigin({ mcp, token }) {
  const results = [];
  const refused = async (what, init) => {
    let outcome;
    try {
      const r = await fetch(mcp, init);
      outcome = `answered ${r.status}`;
    } catch (e) {
      outcome = 'refused';
    }
    results.push([`${what}: refused by the browser`, outcome === 'refused', outcome]);
    window.step(`${what}: ${outcome}`, outcome === 'refused');
  };
  const json = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  await refused('POST without a token from another origin', {
    method: 'POST', headers: { ...json, 'mcp-protocol-version': '2025-11-25' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
  });
  await refused('POST with a valid token from another origin', {
    method: 'POST', headers: { ...json, authorization: `Bearer ${token}`, 'mcp-protocol-version': '2025-11-25' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
  });
  return results;
}

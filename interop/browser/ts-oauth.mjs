// The official TypeScript MCP client (@modelcontextprotocol/sdk, its own OAuth code) as an
// interactive client of `gatehouse demo`: authorization code with PKCE after dynamic client
// registration as a public client, the user's login done in Chromium, then refresh tokens.
//
//   node browser/ts-oauth.mjs        (GATEHOUSE = path of the gatehouse binary)
//
// 1. connect → the SDK meets the 401, discovers, registers (RFC 7591, `none` auth) and asks to
//    send the user to the authorization endpoint; Chromium opens that URL, bob approves on the
//    login page, and the redirect reaches this script's loopback callback with the code;
// 2. finishAuth(code) (PKCE verifier, `resource`), reconnect → `lookup_invoice` as bob (tenant
//    acme, `invoices:read`);
// 3. refresh through the SDK's own `auth()` (it refreshes when it holds a refresh token): a new
//    access token and a new refresh token (rotation), and the new access token works;
// 4. the rotated-out refresh token sent again → `invalid_grant`, and that reuse revokes the
//    family: the newest refresh token is refused too (OAuth 2.1 §4.3.1).

import http from 'node:http';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, auth } from '@modelcontextprotocol/sdk/client/auth.js';

import { check, launch, run, shot, startReady } from './lib.mjs';

const GATEHOUSE = process.env.GATEHOUSE;
if (!GATEHOUSE) throw new Error('GATEHOUSE (the gatehouse binary) is not set');

await run(async () => {
  const demo = await startReady(
    'ts-oauth-demo',
    GATEHOUSE,
    ['demo', '--port', '0', '--issuer-port', '0', '--ledger-port', '0'],
    { ready: /Press Ctrl-C/, env: { RUST_LOG: 'info,rmcp=warn' } },
  );
  const mcp = new URL(/MCP endpoint\s+(\S+)/.exec(demo.output())[1]);
  const issuer = /Authorization server\s+(\S+)/.exec(demo.output())[1];

  // The redirect URI: a loopback listener of this script (RFC 8252 §7.3), one code at a time.
  let codeArrived;
  const callback = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://127.0.0.1');
    res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>Signed in; back to the client.</h1>');
    codeArrived?.(u.searchParams);
  });
  await new Promise((r) => callback.listen(0, '127.0.0.1', r));
  const redirectUrl = `http://127.0.0.1:${callback.address().port}/callback`;

  const browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  page.setDefaultTimeout(30_000);

  // An OAuthClientProvider kept in memory, whose "redirect" is Chromium opening the URL.
  const store = {};
  const provider = {
    get redirectUrl() {
      return redirectUrl;
    },
    get clientMetadata() {
      return {
        client_name: 'Gatehouse interop (TypeScript SDK)',
        redirect_uris: [redirectUrl],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      };
    },
    clientInformation: () => store.client,
    saveClientInformation: (c) => (store.client = c),
    tokens: () => store.tokens,
    saveTokens: (t) => (store.tokens = t),
    saveCodeVerifier: (v) => (store.verifier = v),
    codeVerifier: () => store.verifier,
    redirectToAuthorization: async (url) => {
      store.authorizationUrl = url;
    },
  };

  // 1. Connect: 401 → discovery → registration → a URL for the user.
  let transport = new StreamableHTTPClientTransport(mcp, { authProvider: provider });
  let client = new Client({ name: 'gatehouse-interop-ts-oauth', version: '1.0.0' });
  const first = await client.connect(transport).then(() => 'connected', (e) => e);
  check('first connect needs the user (UnauthorizedError)', first instanceof UnauthorizedError, String(first));
  check('registered dynamically as a public client', !!store.client?.client_id && !store.client.client_secret, store.client);
  const authz = store.authorizationUrl;
  check('authorization URL at the demo issuer with PKCE S256 and the resource',
    authz?.href.startsWith(`${issuer}/authorize`) && authz.searchParams.get('code_challenge_method') === 'S256' &&
      authz.searchParams.get('resource') === mcp.href, authz?.href);

  const params = new Promise((resolve) => (codeArrived = resolve));
  await page.goto(authz.href);
  await page.locator('input[name=user][value=bob]').check();
  await shot(page, 'ts-sdk-login');
  await page.locator('button[name=decision][value=approve]').click();
  const got = await params;
  check('the login redirected to the client with a code and the issuer (RFC 9207)', !!got.get('code') && got.get('iss') === issuer,
    Object.fromEntries(got));

  // 2. Token (PKCE verifier, resource), then MCP as bob.
  await transport.finishAuth(got.get('code'));
  check('token response holds an access and a refresh token', !!store.tokens?.access_token && !!store.tokens?.refresh_token);
  transport = new StreamableHTTPClientTransport(mcp, { authProvider: provider });
  client = new Client({ name: 'gatehouse-interop-ts-oauth', version: '1.0.0' });
  await client.connect(transport);
  const lookup = async () =>
    (await client.callTool({ name: 'lookup_invoice', arguments: { invoiceId: 'INV-2041' } })).content?.[0]?.text ?? '';
  let text = await lookup();
  check('lookup_invoice as bob (acme)', text.startsWith('INV-2041: open'), text);

  // 3. Refresh through the SDK: rotation, and the new access token is accepted.
  const before = { ...store.tokens };
  const outcome = await auth(provider, { serverUrl: mcp });
  check('the SDK refreshed (AUTHORIZED without the user)', outcome === 'AUTHORIZED', outcome);
  check('a new access token and a rotated refresh token',
    store.tokens.access_token !== before.access_token && store.tokens.refresh_token !== before.refresh_token);
  await client.close();
  transport = new StreamableHTTPClientTransport(mcp, { authProvider: provider });
  client = new Client({ name: 'gatehouse-interop-ts-oauth', version: '1.0.0' });
  await client.connect(transport);
  text = await lookup();
  check('lookup_invoice with the refreshed token', text.startsWith('INV-2041: open'), text);
  await client.close();

  // 4. Reuse of the rotated-out refresh token: refused, and it revokes the family.
  const metadata = await (await fetch(`${issuer}/.well-known/oauth-authorization-server`)).json();
  const refresh = (token) =>
    fetch(metadata.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token, client_id: store.client.client_id }),
    }).then(async (r) => ({ status: r.status, body: await r.json() }));
  const reuse = await refresh(before.refresh_token);
  check('the rotated-out refresh token → 400 invalid_grant', reuse.status === 400 && reuse.body.error === 'invalid_grant', reuse);
  const newest = await refresh(store.tokens.refresh_token);
  check('… and the family is revoked: the newest refresh token → invalid_grant', newest.status === 400 && newest.body.error === 'invalid_grant', newest);

  await browser.close();
  callback.close();
});

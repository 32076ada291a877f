// A token-injecting reverse proxy for the conformance suite, whose server mode cannot send a
// bearer token. It obtains one access token from the authorization server (client credentials,
// RFC 8707 `resource` = the proxy's own URL, which is the fixture server's canonical resource)
// and adds `Authorization: Bearer …` to every request it forwards.
//
//   node lib/token-proxy.mjs --port P --upstream http://127.0.0.1:N --issuer ISS --client ID [--path /x/mcp…]
//
// With several `--path`s (one gateway serving several protected resources, each its own
// audience) a token is obtained per path, resource = the proxy's origin + that path, and a
// request gets the token of the path it addresses (the first path's for any other request).
//
// Everything else passes through unchanged, Host and Origin included: the DNS-rebinding
// scenario's forged Host/Origin must reach Gatehouse's guard, which must answer 403 even though
// the request carries a valid token. Bodies stream both ways (SSE responses).
// Prints `READY url=http://127.0.0.1:P/mcp` once listening.

import http from 'node:http';
import { parseArgs } from 'node:util';

import { client as registered } from '../as/clients.mjs';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    upstream: { type: 'string' },
    issuer: { type: 'string' },
    client: { type: 'string', default: 'billing-reader' },
    scope: { type: 'string', default: 'invoices:read' },
    path: { type: 'string', multiple: true, default: ['/mcp'] },
  },
});
const upstream = new URL(args.upstream);

async function obtainToken(resource) {
  const meta = await (await fetch(`${args.issuer}/.well-known/oauth-authorization-server`)).json();
  const c = registered(args.client);
  const res = await fetch(meta.token_endpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${c.id}:${c.secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: args.scope, resource }),
  });
  const body = await res.json();
  if (!res.ok || !body.access_token) throw new Error(`token request failed: ${res.status} ${body.error ?? ''}`);
  return body.access_token;
}

const tokens = new Map();
for (const path of args.path) tokens.set(path, await obtainToken(`http://127.0.0.1:${args.port}${path}`));
const tokenFor = (url) => tokens.get(new URL(url, 'http://x').pathname) ?? tokens.get(args.path[0]);

// Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded.
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade']);

const server = http.createServer((req, res) => {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
  headers.authorization = `Bearer ${tokenFor(req.url)}`;
  const up = http.request(
    { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
    (upRes) => {
      const out = {};
      for (const [k, v] of Object.entries(upRes.headers)) if (!HOP.has(k)) out[k] = v;
      res.writeHead(upRes.statusCode, out);
      res.flushHeaders();
      upRes.pipe(res);
    },
  );
  up.on('error', () => {
    if (!res.headersSent) res.writeHead(502).end();
    else res.destroy();
  });
  // A client that goes away (the suite cancels SSE readers) must close the upstream stream too.
  res.on('close', () => up.destroy());
  req.pipe(up);
});
server.listen(Number(args.port), '127.0.0.1', () => {
  console.log(`READY url=http://127.0.0.1:${args.port}${args.path[0]}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', stop);

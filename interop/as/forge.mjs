// oauth2-mock-server as a token forge for negative interop cases (needs Node ≥ 22.12: run with
// interop/node_modules/.bin/node).
//
//   node as/forge.mjs --resource URL --out tokens.json
//
// Starts the mock authorization server on 127.0.0.1 (ephemeral port) with one RS256 key, mints
// one well-formed RFC 9068 token (the control: Gatehouse must accept it) and one token per
// defect, writes them to --out as { name: token }, then prints `READY issuer=URL` and keeps
// serving its metadata and JWKS for Gatehouse's discovery.

import { writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';

import { OAuth2Server } from 'oauth2-mock-server';

const { values: args } = parseArgs({ options: { resource: { type: 'string' }, out: { type: 'string' } } });
if (!args.resource || !args.out) {
  console.error('usage: forge.mjs --resource URL --out FILE');
  process.exit(2);
}

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
await server.start(0, '127.0.0.1');
const issuer = server.issuer.url;
const now = () => Math.floor(Date.now() / 1000);

/** A token that Gatehouse must accept, then `defect` applied to header and payload. */
async function mint(defect = () => {}) {
  return server.issuer.buildToken({
    scopesOrTransform: (header, payload) => {
      header.typ = 'at+jwt';
      Object.assign(payload, {
        aud: args.resource,
        sub: 'forge-client',
        client_id: 'forge-client',
        scope: 'invoices:read',
        tenant: 'acme',
        jti: randomUUID(),
      });
      defect(header, payload);
    },
  });
}

const tokens = {
  // Control: correctly shaped, so every refusal below is due to its one defect.
  valid: await mint(),
  wrong_issuer: await mint((_h, p) => { p.iss = 'https://evil.example'; }),
  expired: await mint((_h, p) => { p.iat = now() - 7200; p.nbf = now() - 7200; p.exp = now() - 3600; }),
  typ_jwt: await mint((h) => { h.typ = 'JWT'; }),
  unknown_kid: await mint((h) => { h.kid = 'not-in-the-jwks'; }),
  wrong_audience: await mint((_h, p) => { p.aud = 'https://other.example/mcp'; }),
  no_audience: await mint((_h, p) => { delete p.aud; }),
  not_yet_valid: await mint((_h, p) => { p.nbf = now() + 3600; }),
};
writeFileSync(args.out, JSON.stringify(tokens, null, 2), { mode: 0o600 });
console.log(`READY issuer=${issuer}`);

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => server.stop().then(() => process.exit(0)));

// oidc-provider (a certified OpenID provider) configured as the authorization server of the
// Gatehouse billing server: client credentials, RFC 8707 resource indicators, RFC 7662
// introspection, RFC 7009 revocation and RFC 9449 DPoP-bound tokens.
//
//   node as/oidc-provider.mjs --format jwt|opaque --resource URL [--resource URL…] [--port N]
//
// Listens on 127.0.0.1 (port N, default 0 = ephemeral) and prints one line
// `READY issuer=http://127.0.0.1:PORT` once it accepts connections; interop/run waits for it.
//
// --format jwt     access tokens for a known resource are RFC 9068 JWTs (typ at+jwt)
// --format opaque  access tokens are opaque; the resource server checks them by introspection
//
// Known resources: the --resource URLs (the billing server, the conformance fixture server) and OTHER_RESOURCE, a second
// resource used to prove that Gatehouse refuses tokens minted for someone else (RFC 8707 §2).
// A token request without `resource` gets an opaque token with no audience (oidc-provider's
// behaviour), which Gatehouse must refuse as well.

import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

import { CLIENTS, OTHER_RESOURCE, SCOPES } from './clients.mjs';

const { values: args } = parseArgs({
  options: {
    format: { type: 'string', default: 'jwt' },
    resource: { type: 'string', multiple: true },
    port: { type: 'string', default: '0' },
  },
});
if (!['jwt', 'opaque'].includes(args.format) || !args.resource?.length) {
  console.error('usage: oidc-provider.mjs --format jwt|opaque --resource URL [--resource URL…] [--port N]');
  process.exit(2);
}

// The issuer URL needs the port, and the port is only known once listening: bind first, then
// build the provider and hand it the server's requests.
const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(args.port), '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const known = new Set([...args.resource, OTHER_RESOURCE]);

const provider = new Provider(issuer, {
  clients: CLIENTS.map((c) => ({
    client_id: c.id,
    client_secret: c.secret,
    grant_types: c.grantTypes,
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    // oidc-provider refuses an empty `scope` in client metadata: omit it instead.
    ...(c.scopes.length ? { scope: c.scopes.join(' ') } : {}),
    ...(c.dpop ? { dpop_bound_access_tokens: true } : {}),
  })),
  ttl: { ClientCredentials: 600 },
  scopes: ['openid', ...SCOPES],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // Only the resource server's own client may introspect (RFC 7662 §2.1 requires some
      // authorization of the caller; oidc-provider also requires client authentication).
      allowedPolicy: async (_ctx, client) => client.clientId === 'billing-rs',
    },
    revocation: { enabled: true },
    // RFC 9449 at the token endpoint: a request with a `DPoP` proof gets a token bound to the
    // proof's key (`cnf.jkt` in the JWT, token_type DPoP). On by default in this version; named
    // here because the DPoP scenarios depend on it. No AS nonces (`nonceSecret`): the nonce
    // round trip under test is Gatehouse's.
    dPoP: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // No default resource: a request without `resource` yields an audience-less token.
      defaultResource: async () => undefined,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (_ctx, resource, client) => {
        if (!known.has(resource)) {
          throw new Provider.errors.InvalidTarget();
        }
        // Each client may obtain only the scopes it is registered for; scopes outside this
        // list are dropped silently by oidc-provider (so a reader asking for write gets read).
        const allowed = CLIENTS.find((c) => c.id === client.clientId)?.scopes ?? [];
        return {
          scope: allowed.join(' '),
          audience: resource,
          accessTokenTTL: 600,
          accessTokenFormat: args.format,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // A tenant claim for multi-tenant clients (Gatehouse's `tenancy.claim`, default `tenant`).
  // oidc-provider puts these claims into the JWT and into introspection responses alike.
  extraTokenClaims: async (_ctx, token) => {
    const tenant = CLIENTS.find((c) => c.id === token.clientId)?.tenant;
    return tenant ? { tenant } : undefined;
  },
  // Fixed cookie keys silence a warning; no cookie is ever set in a client-credentials flow.
  cookies: { keys: ['interop-only-not-a-secret'] },
});
provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err));

server.on('request', provider.callback());
console.log(`READY issuer=${issuer}`);

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

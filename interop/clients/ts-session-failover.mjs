// The official TypeScript MCP client in a stateful session behind deploy/up (three replicas
// behind nginx, sessions routed by the replica named in Mcp-Session-Id), when the replica that
// holds its session dies:
//
//   node clients/ts-session-failover.mjs --url LB_MCP_URL --issuer ISSUER --run DEPLOY_RUN_DIR
//
// 1. connect (OAuth discovery and client credentials against oidc-provider, as in the other
//    scenarios) → a session id that names its replica → tools/call lookup_invoice;
// 2. SIGKILL that replica (its pid from deploy/up's run directory) → the next call in the session
//    fails with the spec's 404 (from nginx while the replica is down, or from the restarted
//    replica, which does not know the session);
// 3. as the spec says a client must on 404, start a new session (a new initialize, no session
//    id) → another ready replica takes it → the call succeeds.
//
// Exits 0 on success; prints what it checked. Nothing here prints a token.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

import { client as registered } from '../as/clients.mjs';
import { assert, check } from '../lib/assert.mjs';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    issuer: { type: 'string' },
    run: { type: 'string' },
  },
});

// as/clients.mjs: tenant acme's reader.
const c = registered('billing-reader');
const provider = new ClientCredentialsProvider({
  clientId: c.id,
  clientSecret: c.secret,
  scope: 'invoices:read',
  expectedIssuer: args.issuer,
  clientName: 'gatehouse-interop-session-failover',
});

const statuses = [];
const recordingFetch = async (input, init = {}) => {
  const response = await fetch(input, init);
  statuses.push({ method: init.method ?? 'GET', status: response.status, session: new Headers(init.headers).get('mcp-session-id') });
  return response;
};

async function connect() {
  const transport = new StreamableHTTPClientTransport(new URL(args.url), { authProvider: provider, fetch: recordingFetch });
  const client = new Client({ name: 'gatehouse-interop-session-failover', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

const lookup = (client) => client.callTool({ name: 'lookup_invoice', arguments: { invoiceId: 'INV-2041' } });

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

let { client, transport } = await connect();
const first = transport.sessionId;
assert(/^[abc]\.[0-9a-f-]{36}$/.test(first ?? ''), `session id names a replica: ${first}`);
check(`session ${first.slice(0, 2)}… on replica ${first[0]}`, true);
let r = await lookup(client);
check('tools/call lookup_invoice in the session', !r.isError && JSON.stringify(r.content).includes('INV-2041'));

const replica = first[0];
const pid = Number(readFileSync(`${args.run}/replica-${replica}.pid`, 'utf8').trim());
process.kill(pid, 'SIGKILL');
for (let i = 0; i < 100 && alive(pid); i++) await new Promise((ok) => setTimeout(ok, 50));
assert(!alive(pid), `replica ${replica} (pid ${pid}) did not die`);
check(`replica ${replica} killed (SIGKILL)`, true);

let failure;
try {
  r = await lookup(client);
} catch (e) {
  failure = e;
}
const last = statuses.filter((s) => s.session === first).at(-1);
assert(failure !== undefined, `a call in the dead replica's session succeeded: ${JSON.stringify(r)}`);
check(`the session's next call is answered ${last?.status} (${failure.code ?? ''} ${String(failure.message).slice(0, 60)})`, last?.status === 404);

// The spec: on 404 for a request with a session id, start a new session without one.
await client.close().catch(() => {});
({ client, transport } = await connect());
const second = transport.sessionId;
check(`a new session ${second?.slice(0, 2)}… (a new initialize, no session id)`, second && second !== first);
r = await lookup(client);
check('tools/call lookup_invoice in the new session', !r.isError && JSON.stringify(r.content).includes('INV-2041'));
await client.close();
console.log('session failover: ok');

// The official TypeScript MCP client against `gatehouse proxy` in front of the official
// reference server (@modelcontextprotocol/server-everything), comparing every answer with the
// same server reached directly (a stdio child of this script, or its HTTP URL).
//
//   node clients/ts-everything.mjs --url GATEWAY_MCP_URL --issuer AS --client ID --scope S
//        (--direct-stdio PATH/TO/server-everything/dist/index.js | --direct-url URL)
//        --hidden TOOL[,TOOL…] --scenario everything|stepup
//
// Scenarios:
//   everything  the SDK's own discovery (401 → PRM → AS metadata → token with resource = the
//               gateway URL); tools/list equals the direct list minus the policy's hidden tools
//               (whole definitions: schemas, outputSchema, annotations, _meta; `execution`
//               is not relayed since the gateway does not bridge tasks); a hidden tool is
//               answered exactly like a missing one; content fidelity (get-tiny-image bytes,
//               get-structured-content, get-resource-links, get-resource-reference,
//               get-annotated-message, get-sum: each result equal to the direct one); get-env
//               never shows the secret planted in the gateway's environment; pagination walks
//               (tools, resources, templates, prompts) end and list what the direct walks list.
//   stepup      a token with invoices:read → echo (needs invoices:write) → 403
//               insufficient_scope scope="invoices:write" → a token with both → echo succeeds.
//
// Exits 0 on success; prints what it checked. Nothing here prints a token.

import { isDeepStrictEqual } from 'node:util';
import { parseArgs } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

import { client as registered } from '../as/clients.mjs';
import { assert, check, parseChallenge } from '../lib/assert.mjs';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    issuer: { type: 'string' },
    client: { type: 'string', default: 'billing-reader' },
    scope: { type: 'string', default: 'invoices:read' },
    'direct-stdio': { type: 'string' },
    'direct-url': { type: 'string' },
    hidden: { type: 'string', default: '' },
    secret: { type: 'string', default: 'INTEROP_GATEWAY_SECRET' },
    'secret-value': { type: 'string', default: 'must-not-reach-the-child' },
    scenario: { type: 'string', default: 'everything' },
  },
});
const hidden = args.hidden.split(',').filter(Boolean);

// Every HTTP exchange with the gateway and the AS (method, URL, status, challenge, form body).
const log = [];
const recordingFetch = async (input, init = {}) => {
  const url = typeof input === 'string' ? input : input.url ?? String(input);
  const body = typeof init.body === 'string' ? init.body : init.body instanceof URLSearchParams ? init.body.toString() : undefined;
  const response = await fetch(input, init);
  log.push({ method: init.method ?? 'GET', url: new URL(url), status: response.status, challenge: response.headers.get('www-authenticate'), body });
  return response;
};
const mcpUrl = new URL(args.url);
const isMcp = (e) => e.url.origin === mcpUrl.origin && e.url.pathname === mcpUrl.pathname;
const isToken = (e) => e.method === 'POST' && e.url.pathname === '/token';

const c = registered(args.client);
async function viaGateway(scope) {
  const provider = new ClientCredentialsProvider({ clientId: c.id, clientSecret: c.secret, scope, expectedIssuer: args.issuer, clientName: 'gatehouse-interop-everything' });
  const client = new Client({ name: 'gatehouse-interop-everything', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recordingFetch }));
  return client;
}

async function direct() {
  // No capabilities declared, like the gateway's listing client by default: server-everything
  // then registers none of its roots/sampling/elicitation tools.
  const client = new Client({ name: 'gatehouse-interop-direct', version: '1.0.0' });
  const transport = args['direct-stdio']
    ? new StdioClientTransport({ command: process.execPath, args: [args['direct-stdio'], 'stdio'], env: { PATH: process.env.PATH, HOME: process.env.HOME }, stderr: 'ignore' })
    : new StreamableHTTPClientTransport(new URL(args['direct-url']));
  await client.connect(transport);
  return client;
}

// Walks a paginated list to its end (bounded: a server or gateway that hands out cursors
// forever fails here instead of hanging; mcp-proxy#233, agentgateway#3476).
async function walk(client, method, key) {
  const call = { 'tools/list': 'listTools', 'resources/list': 'listResources', 'resources/templates/list': 'listResourceTemplates', 'prompts/list': 'listPrompts' }[method];
  const items = [];
  let cursor;
  for (let page = 1; page <= 50; page++) {
    const r = await client[call](cursor ? { cursor } : undefined);
    items.push(...(r[key] ?? []));
    cursor = r.nextCursor;
    if (!cursor) return { items, pages: page };
  }
  throw new Error(`${method}: still paginating after 50 pages`);
}

// A failed call's observable answer (thrown protocol error or error result), for comparison.
async function outcome(client, name, a = {}) {
  try {
    return { result: await client.callTool({ name, arguments: a }) };
  } catch (e) {
    return { error: { code: e?.code, message: e?.message, data: e?.data } };
  }
}

const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

async function everything() {
  const gw = await viaGateway(args.scope);
  const first = log.find(isMcp);
  assert(first?.status === 401, `first request to the gateway: expected 401, got ${first?.status}`);
  const ch = parseChallenge(first.challenge);
  assert(ch.params.resource_metadata, `401 without resource_metadata: ${first.challenge}`);
  const iPrm = log.findIndex((e) => e.url.href === ch.params.resource_metadata && e.status === 200);
  const iTok = log.findIndex((e) => isToken(e) && e.status === 200);
  const form = new URLSearchParams(log[iTok]?.body);
  check(`discovery: 401 → PRM → token with resource=${form.get('resource')}`, iPrm >= 0 && iTok > iPrm && form.get('resource') === args.url);

  const up = await direct();
  const dTools = (await up.listTools()).tools.sort(byName);
  const gTools = (await gw.listTools()).tools.sort(byName);
  const dNames = dTools.map((t) => t.name);
  assert(hidden.every((h) => dNames.includes(h)), `hidden tools ${hidden} not all offered directly (${dNames})`);
  // The gateway does not bridge tasks (gatehouse-gateway lib docs): it must not advertise them,
  // and a tool's `execution` (taskSupport) is not relayed. Everything else must be identical.
  const caps = gw.getServerCapabilities();
  check(`gateway capabilities without tasks: ${Object.keys(caps ?? {}).join(', ')}`, !caps?.tasks);
  check('no tool definition through the gateway carries `execution`', gTools.every((t) => !('execution' in t)));
  const expected = dTools.filter((t) => !hidden.includes(t.name)).map(({ execution, ...t }) => t);
  const diff = expected.filter((t) => !isDeepStrictEqual(t, gTools.find((g) => g.name === t.name)));
  if (gTools.length !== expected.length) console.error(`  direct minus hidden: ${expected.map((t) => t.name)}\n  gateway: ${gTools.map((t) => t.name)}`);
  for (const t of diff) console.error(`  differs: ${JSON.stringify(t)}\n  gateway: ${JSON.stringify(gTools.find((g) => g.name === t.name))}`);
  check(`tools/list through the gateway = direct (${dTools.length}) minus hidden [${hidden}] (${gTools.length}), whole definitions`,
    gTools.length === expected.length && diff.length === 0);

  for (const h of hidden) {
    const hid = await outcome(gw, h);
    const missing = await outcome(gw, 'no-such-tool');
    const norm = (o) => JSON.stringify(o).replaceAll(h, '<name>').replaceAll('no-such-tool', '<name>');
    check(`hidden ${h} answered as a missing tool: ${JSON.stringify(hid)}`, !!hid.error && norm(hid) === norm(missing));
  }

  // Content fidelity: the gateway's result equals the direct one, and carries what it should.
  const same = async (name, a) => {
    const [g, d] = [await gw.callTool({ name, arguments: a }), await up.callTool({ name, arguments: a })];
    check(`${name} ${JSON.stringify(a)}: result equal to the direct one`, isDeepStrictEqual(g, d));
    if (!isDeepStrictEqual(g, d)) console.error(`  gateway: ${JSON.stringify(g)}\n  direct:  ${JSON.stringify(d)}`);
    return g;
  };
  const img = (await same('get-tiny-image', {})).content.find((b) => b.type === 'image');
  const png = Buffer.from(img?.data ?? '', 'base64');
  check(`get-tiny-image: ${png.length} bytes of image/png`, img?.mimeType === 'image/png' && png.subarray(1, 4).toString() === 'PNG' && png.length > 1000);
  const sc = (await same('get-structured-content', { location: 'Chicago' })).structuredContent;
  check(`get-structured-content: structuredContent ${JSON.stringify(sc)}`, isDeepStrictEqual(sc, { temperature: 36, conditions: 'Light rain / drizzle', humidity: 82 }));
  const links = (await same('get-resource-links', { count: 4 })).content.filter((b) => b.type === 'resource_link');
  check(`get-resource-links: ${links.length} resource_link blocks (${links.map((l) => l.uri).join(' ')})`, links.length === 4 && links.every((l) => l.uri));
  const ref = (await same('get-resource-reference', { resourceType: 'Blob', resourceId: 2 })).content.find((b) => b.type === 'resource');
  check(`get-resource-reference: embedded ${ref?.resource?.uri}`, !!ref?.resource?.uri);
  const ann = (await same('get-annotated-message', { messageType: 'error', includeImage: true })).content;
  check(`get-annotated-message: annotations ${JSON.stringify(ann.map((b) => b.annotations))}`, ann.length >= 2 && ann.every((b) => b.annotations));
  const sum = await same('get-sum', { a: 2, b: 40 });
  check(`get-sum: ${sum.content?.[0]?.text}`, /42/.test(sum.content?.[0]?.text ?? ''));

  // get-env: the child's whole environment; the gateway's secret must be absent, by name and value.
  const envText = (await gw.callTool({ name: 'get-env', arguments: {} })).content[0].text;
  const env = JSON.parse(envText);
  check(`get-env through the gateway: ${args['direct-stdio'] ? Object.keys(env).sort().join(' ') : `${Object.keys(env).length} variables of the HTTP server's own`} (no ${args.secret})`,
    !(args.secret in env) && !envText.includes(args['secret-value']));
  if (args['direct-stdio']) {
    check('get-env: the variable the gateway config sets is there', env.EVERYTHING_INJECTED === 'set-by-the-gateway-config');
  }

  // Pagination walks end and agree with the direct ones.
  for (const [method, key, id] of [['tools/list', 'tools', 'name'], ['resources/list', 'resources', 'uri'], ['resources/templates/list', 'resourceTemplates', 'uriTemplate'], ['prompts/list', 'prompts', 'name']]) {
    const g = await walk(gw, method, key);
    const d = await walk(up, method, key);
    const gi = g.items.map((x) => x[id]).sort();
    const di = d.items.map((x) => x[id]).filter((x) => key !== 'tools' || !hidden.includes(x)).sort();
    check(`${method}: walk ends after ${g.pages} page(s), ${gi.length} items, as directly (${d.pages} page(s))`, isDeepStrictEqual(gi, di));
  }
  await up.close();
  await gw.close();
}

async function stepup() {
  assert(!args.scope.split(' ').includes('invoices:write'), 'step-up starts from a token without invoices:write');
  const gw = await viaGateway(args.scope);
  let refused;
  try {
    const r = await gw.callTool({ name: 'echo', arguments: { message: 'x' } });
    refused = `result ${JSON.stringify(r)}`;
  } catch (e) {
    refused = String(e?.message);
  }
  const forbidden = log.filter((e) => isMcp(e) && e.status === 403).at(-1);
  const fch = forbidden && parseChallenge(forbidden.challenge);
  check(`echo with invoices:read → HTTP 403 error=${fch?.params.error} scope="${fch?.params.scope}" (${refused})`,
    fch?.params.error === 'insufficient_scope' && fch.params.scope.split(' ').includes('invoices:write') && !!fch.params.resource_metadata);
  // SDK 1.32.2 re-requests its configured scope on 403 (README workaround 1): step up as an
  // application, with the union of what it had and what the challenge names.
  const union = [...new Set([...args.scope.split(' '), ...fch.params.scope.split(' ')])].join(' ');
  const gw2 = await viaGateway(union);
  const last = new URLSearchParams(log.filter((e) => isToken(e) && e.status === 200).at(-1).body);
  const r = await gw2.callTool({ name: 'echo', arguments: { message: 'stepped up ✓' } });
  check(`new token scope="${last.get('scope')}" → echo: ${r.content?.[0]?.text}`, last.get('scope').split(' ').includes('invoices:write') && !r.isError && /stepped up ✓/.test(r.content?.[0]?.text ?? ''));
  await gw.close();
  await gw2.close();
}

try {
  if (args.scenario === 'everything') await everything();
  else if (args.scenario === 'stepup') await stepup();
  else throw new Error(`unknown scenario ${args.scenario}`);
  console.log('OK');
  process.exit(0);
} catch (e) {
  console.error('FAILED:', e?.stack ?? e);
  for (const x of log) console.error(`  ${x.method} ${x.url.href} → ${x.status}${x.challenge ? ` [${x.challenge}]` : ''}`);
  process.exit(1);
}

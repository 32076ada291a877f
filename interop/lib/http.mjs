// Scripted HTTP helpers: tokens from a real authorization server, raw MCP requests, and checks
// on status codes and RFC 6750 challenges that the official clients hide.

import http from 'node:http';

import { client as registered } from '../as/clients.mjs';
import { assert, check, parseChallenge } from './assert.mjs';

const metadataCache = new Map();

/** The authorization server's RFC 8414 metadata. */
export async function asMetadata(issuer) {
  if (!metadataCache.has(issuer)) {
    const res = await fetch(`${issuer}/.well-known/oauth-authorization-server`);
    assert(res.ok, `AS metadata ${issuer}: HTTP ${res.status}`);
    metadataCache.set(issuer, await res.json());
  }
  return metadataCache.get(issuer);
}

function basic(clientId) {
  const c = registered(clientId);
  return `Basic ${Buffer.from(`${c.id}:${c.secret}`).toString('base64')}`;
}

/**
 * A client-credentials token. `resource` undefined → no `resource` parameter at all.
 * Returns { token, scope }.
 */
export async function getToken(issuer, clientId, { scope = 'invoices:read', resource } = {}) {
  const meta = await asMetadata(issuer);
  const form = new URLSearchParams({ grant_type: 'client_credentials', scope });
  if (resource !== undefined) form.set('resource', resource);
  const res = await fetch(meta.token_endpoint, {
    method: 'POST',
    headers: { authorization: basic(clientId), 'content-type': 'application/x-www-form-urlencoded' },
    body: form,
  });
  const body = await res.json();
  assert(res.ok && body.access_token, `token request (${clientId}, scope=${scope}): HTTP ${res.status} ${body.error ?? ''}`);
  return { token: body.access_token, scope: body.scope };
}

/** RFC 7009 revocation, authenticated as the client the token was issued to. */
export async function revoke(issuer, clientId, token) {
  const meta = await asMetadata(issuer);
  const res = await fetch(meta.revocation_endpoint, {
    method: 'POST',
    headers: { authorization: basic(clientId), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
  });
  assert(res.ok, `revocation: HTTP ${res.status}`);
}

let nextId = 1;

/** A JSON-RPC request body. */
export function rpc(method, params = {}) {
  return { jsonrpc: '2.0', id: nextId++, method, params };
}

/** Headers and `_meta` for protocol 2026-07-28 (per-request envelope, no initialize). */
export function modern(method, name, params = {}) {
  const body = rpc(method, {
    ...params,
    _meta: {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': {},
      'io.modelcontextprotocol/clientInfo': { name: 'gatehouse-interop-http', version: '1.0.0' },
    },
  });
  const headers = { 'mcp-protocol-version': '2026-07-28', 'mcp-method': method };
  if (name !== undefined) headers['mcp-name'] = name;
  return { body, headers };
}

/**
 * POSTs `body` to the MCP endpoint. `token` adds `Authorization: Bearer`; `headers` override.
 * Returns { status, headers, challenge, json } (json: the JSON-RPC message, from a JSON or an
 * SSE response).
 */
export async function post(url, body, { token, headers = {}, protocol = '2025-11-25' } = {}) {
  const h = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': protocol,
    ...headers,
  };
  if (token !== undefined) h.authorization = `Bearer ${token}`;
  // node:http rather than fetch: fetch may not send a caller-chosen Host header, which the
  // DNS-rebinding checks need.
  const u = new URL(url);
  const { status, resHeaders, text } = await new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, method: 'POST', path: u.pathname + u.search, headers: h, timeout: 30000 },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { data += d; });
        res.on('end', () => resolve({ status: res.statusCode, resHeaders: res.headers, text: data }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`POST ${url}: timed out`)));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
  let json = null;
  if ((resHeaders['content-type'] ?? '').includes('text/event-stream')) {
    for (const line of text.split('\n')) {
      if (line.startsWith('data:') && line.slice(5).trim()) {
        try { json = JSON.parse(line.slice(5)); } catch { /* not JSON-RPC */ }
      }
    }
  } else {
    try { json = JSON.parse(text); } catch { json = null; }
  }
  return { status, headers: resHeaders, challenge: resHeaders['www-authenticate'] ?? null, json };
}

/** Asserts a 401 invalid_token challenge that points at the metadata (A16, A22, A23). */
export function expectInvalidToken(what, r, metadataUrl) {
  const c = parseChallenge(r.challenge);
  check(
    `${what} → ${r.status} Bearer error="${c.params.error}"`,
    r.status === 401 && c.scheme === 'bearer' && c.params.error === 'invalid_token' && c.params.resource_metadata === metadataUrl,
  );
}

/** The RFC 9728 metadata URL of an MCP endpoint URL (path-suffixed form). */
export function metadataUrlOf(mcpUrl) {
  const u = new URL(mcpUrl);
  return `${u.origin}/.well-known/oauth-protected-resource${u.pathname}`;
}

/** The structured result of a successful tools/call. */
export function toolResult(r) {
  return r.json?.result?.structuredContent ?? null;
}

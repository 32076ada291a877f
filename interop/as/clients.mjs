// Client registrations shared by the authorization-server script and the client scripts.
// Interop-only credentials for loopback test servers; they protect nothing.

export const SCOPES = ['invoices:read', 'invoices:write'];

/** A second protected resource at the same AS: its tokens must not open the billing server. */
export const OTHER_RESOURCE = 'https://other.example/mcp';

export const CLIENTS = [
  // May only ever read (the AS drops invoices:write for it).
  { id: 'billing-reader', secret: 'reader-secret', scopes: ['invoices:read'], tenant: 'acme', grantTypes: ['client_credentials'] },
  // May read and write; asks for the least it needs first (step-up scenarios).
  { id: 'billing-agent', secret: 'agent-secret', scopes: SCOPES, tenant: 'acme', grantTypes: ['client_credentials'] },
  // Another tenant with the same scopes: sees its own invoices only.
  { id: 'globex-agent', secret: 'globex-secret', scopes: SCOPES, tenant: 'globex', grantTypes: ['client_credentials'] },
  // DPoP only (RFC 9449): registered with `dpop_bound_access_tokens`, so oidc-provider refuses
  // its token requests without a proof and every token it gets is bound to its key (cnf.jkt).
  // A client of its own: the Bearer clients above must keep getting Bearer tokens.
  { id: 'billing-dpop', secret: 'dpop-secret', scopes: ['invoices:read'], tenant: 'acme', grantTypes: ['client_credentials'], dpop: true },
  // The resource server itself, for introspection (no grant: it never obtains tokens).
  { id: 'billing-rs', secret: 'rs-secret', scopes: [], grantTypes: [] },
];

/** Looks a client up by id. */
export function client(id) {
  const c = CLIENTS.find((x) => x.id === id);
  if (!c) throw new Error(`unknown client ${id}`);
  return c;
}

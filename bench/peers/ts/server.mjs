// The tutorial's design ("Build an OAuth-Secured MCP Server", shared/seed), rebuilt as the
// benchmark's peer with the official TypeScript SDK. Same structure as the tutorial:
// - Express, `express.json()`, the RFC 9728 metadata router;
// - `requireBearerAuth` with a jose verifier: `createRemoteJWKSet` on the issuer's JWKS and
//   `jwtVerify` checking issuer and audience, `invoices:read` required;
// - a new McpServer and StreamableHTTPServerTransport for every request, stateless
//   (no session ids) with JSON responses, DNS-rebinding protection on;
// - tools lookup_invoice and void_invoice over an in-memory invoice table (the tutorial's `db`).
// Plain JavaScript instead of TypeScript so that no transpiler runs in the measured process.
//
// Usage: node server.mjs PORT ISSUER_URL RESOURCE_URL

import express from "express";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { requireBearerAuth } from "@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js";
import {
  mcpAuthMetadataRouter,
  getOAuthProtectedResourceMetadataUrl,
} from "@modelcontextprotocol/sdk/server/auth/router.js";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { z } from "zod";

const [port, AUTH_SERVER, resource] = process.argv.slice(2);
const RESOURCE_URL = new URL(resource);

const db = {
  invoices: new Map(
    [
      ["INV-2041", { id: "INV-2041", status: "open", total: "1250.00 EUR" }],
      ["INV-2042", { id: "INV-2042", status: "paid", total: "310.00 EUR" }],
    ].map(([k, v]) => [k, v]),
  ),
};

function buildServer() {
  const server = new McpServer({ name: "billing-tools", version: "1.0.0" });
  server.registerTool(
    "lookup_invoice",
    {
      title: "Look up an invoice",
      description: "Return the status and total for a single invoice by id.",
      inputSchema: { invoiceId: z.string().describe("The invoice id, e.g. INV-2041") },
    },
    async ({ invoiceId }) => {
      const invoice = db.invoices.get(invoiceId);
      if (!invoice) {
        return { content: [{ type: "text", text: `No invoice found for ${invoiceId}.` }], isError: true };
      }
      return { content: [{ type: "text", text: `${invoice.id}: ${invoice.status}, total ${invoice.total}` }] };
    },
  );
  server.registerTool(
    "void_invoice",
    {
      title: "Void an invoice",
      description: "Mark an invoice as voided. Requires write access.",
      inputSchema: { invoiceId: z.string() },
    },
    async ({ invoiceId }, extra) => {
      const scopes = extra.authInfo?.scopes ?? [];
      if (!scopes.includes("invoices:write")) {
        return { content: [{ type: "text", text: "This action requires invoices:write." }], isError: true };
      }
      const invoice = db.invoices.get(invoiceId);
      if (invoice) invoice.status = "void";
      return { content: [{ type: "text", text: `Voided ${invoiceId}.` }] };
    },
  );
  return server;
}

const JWKS = createRemoteJWKSet(new URL(`${AUTH_SERVER}/jwks`));
const verifier = {
  async verifyAccessToken(token) {
    const { payload } = await jwtVerify(token, JWKS, {
      issuer: AUTH_SERVER,
      audience: RESOURCE_URL.href,
    });
    return {
      token,
      clientId: String(payload.client_id ?? payload.azp ?? ""),
      scopes: typeof payload.scope === "string" ? payload.scope.split(" ") : [],
      expiresAt: payload.exp,
      resource: RESOURCE_URL,
    };
  },
};

const app = express();
app.use(express.json());
app.use(
  mcpAuthMetadataRouter({
    oauthMetadata: {
      issuer: AUTH_SERVER,
      authorization_endpoint: `${AUTH_SERVER}/authorize`,
      token_endpoint: `${AUTH_SERVER}/token`,
      response_types_supported: ["code"],
    },
    resourceServerUrl: RESOURCE_URL,
    scopesSupported: ["invoices:read", "invoices:write"],
    resourceName: "Billing Tools MCP",
  }),
);

const bearer = requireBearerAuth({
  verifier,
  requiredScopes: ["invoices:read"],
  resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(RESOURCE_URL),
});

app.post(RESOURCE_URL.pathname, bearer, async (req, res) => {
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: true,
    enableDnsRebindingProtection: true,
    allowedHosts: [RESOURCE_URL.host],
  });
  const server = buildServer();
  res.on("close", () => {
    transport.close();
    server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, req.body);
});

const listener = app.listen(Number(port), "127.0.0.1", () => {
  console.error(`ts-peer: ${RESOURCE_URL.href} (issuer ${AUTH_SERVER})`);
});
const stop = () => listener.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

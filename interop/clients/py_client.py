"""The official Python MCP client (PyPI `mcp` 2.x) against a Gatehouse server, with the SDK's
own client-credentials provider doing the whole OAuth discovery.

    python clients/py_client.py --url MCP_URL --issuer AS_ISSUER --client ID --scenario NAME
        [--mode legacy|2026-07-28]

Scenarios:
  discovery  401 → protected-resource metadata → AS metadata → token (with `resource`) →
             tools/list → tools/call lookup_invoice.
  stepup     a token with invoices:read only → void_invoice → 403 insufficient_scope → the
             SDK's own step-up (SEP-2350 scope union) → a token with invoices:write → success.
  fastmcp    through `gatehouse proxy` to a FastMCP stdio server (servers/fastmcp_server.py):
             the policy's tools only (`forbidden` hidden, answered as a missing tool), `add`
             with its structured result, `shout`, and `env_names` without the gateway's secret.

Every HTTP exchange is recorded through httpx2 event hooks and the order is asserted (the
client surfaces a bare 401 as an MCP error, so statuses are recorded here). No token is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import anyio
import httpx2
from mcp import Client
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

# Interop-only credentials of the loopback test authorization server (as/clients.mjs).
SECRETS = {
    "billing-reader": "reader-secret",
    "billing-agent": "agent-secret",
    "globex-agent": "globex-secret",
}


class MemoryStorage:
    """In-memory TokenStorage."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class Exchange:
    method: str
    url: httpx2.URL
    status: int
    challenge: str | None
    form: dict[str, str] = field(default_factory=dict)


def check(what: str, ok: bool) -> None:
    print(f"  {'ok ' if ok else 'NOT'} {what}", flush=True)
    if not ok:
        raise AssertionError(f"check failed: {what}")


def challenge_params(header: str | None) -> dict[str, str]:
    """RFC 6750 §3 challenge parameters (quoted or token values)."""
    import re

    if not header:
        return {}
    return {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
        for m in re.finditer(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))', header)
    }


async def run(args: argparse.Namespace) -> None:
    log: list[Exchange] = []

    async def on_response(response: httpx2.Response) -> None:
        req = response.request
        form: dict[str, str] = {}
        if req.method == "POST" and req.url.path.endswith("/token"):
            form = {k: v[0] for k, v in parse_qs(req.content.decode()).items()}
        log.append(
            Exchange(req.method, req.url, response.status_code, response.headers.get("www-authenticate"), form)
        )

    provider = ClientCredentialsOAuthProvider(
        server_url=args.url,
        storage=MemoryStorage(),
        client_id=args.client,
        client_secret=SECRETS[args.client],
        scope=args.scope,
        issuer=args.issuer,
    )
    http = httpx2.AsyncClient(auth=provider, event_hooks={"response": [on_response]}, timeout=30)
    mcp_url = httpx2.URL(args.url)

    def is_mcp(e: Exchange) -> bool:
        return e.url.host == mcp_url.host and e.url.port == mcp_url.port and e.url.path == mcp_url.path

    def tokens() -> list[Exchange]:
        return [e for e in log if e.method == "POST" and e.url.path.endswith("/token") and e.status == 200]

    try:
        async with http, Client(streamable_http_client(args.url, http_client=http), mode=args.mode) as client:
            check(f"protocol {client.protocol_version} (mode {args.mode})", client.protocol_version is not None)
            if args.mode != "legacy":
                check("speaks 2026-07-28", client.protocol_version == "2026-07-28")
            listed = await client.list_tools()
            names = sorted(t.name for t in listed.tools)
            if args.scenario == "fastmcp":
                check(f"tools/list → {', '.join(names)} (forbidden hidden)", names == ["add", "env_names", "shout"])
            else:
                check(f"tools/list → {', '.join(names)}", "lookup_invoice" in names and "void_invoice" in names)

            # A 2026-07-28 client sends nothing before its first operation, so the discovery
            # sequence is checked after tools/list in both modes.
            first = next((e for e in log if is_mcp(e)), None)
            check(f"first MCP request → {first and first.status}", first is not None and first.status == 401)
            ch = challenge_params(first.challenge)
            check("401 challenge names resource_metadata", "resource_metadata" in ch)
            i_prm = next(i for i, e in enumerate(log) if str(e.url) == ch["resource_metadata"] and e.status == 200)
            i_asm = next(
                i
                for i, e in enumerate(log)
                if e.url.port == httpx2.URL(args.issuer).port and e.url.path.startswith("/.well-known/") and e.status == 200
            )
            i_tok = log.index(tokens()[0])
            check(f"PRM ({i_prm}) → AS metadata ({i_asm}) → token ({i_tok}), in order", i_prm < i_asm < i_tok)
            form = tokens()[0].form
            check(
                f"token requested with resource={form.get('resource')} scope={form.get('scope')}",
                form.get("resource") == args.url,
            )

            if args.scenario == "discovery":
                r = await client.call_tool("lookup_invoice", {"invoiceId": args.invoice})
                sc = r.structured_content or {}
                check(f"tools/call lookup_invoice {args.invoice} → {json.dumps(sc)}", not r.is_error and sc.get("invoiceId") == args.invoice)
            elif args.scenario == "stepup":
                check("step-up starts from a read-only token", form.get("scope") == "invoices:read")
                before = len(tokens())
                r = await client.call_tool(
                    "void_invoice", {"invoiceId": args.invoice, "reason": "interop step-up (Python SDK)"}
                )
                denied = next((e for e in log if is_mcp(e) and e.status == 403), None)
                check("a 403 was observed", denied is not None)
                dch = challenge_params(denied.challenge)
                check(
                    f"403 challenge: error={dch.get('error')} scope=\"{dch.get('scope')}\"",
                    dch.get("error") == "insufficient_scope" and "invoices:write" in dch.get("scope", "").split(),
                )
                new = tokens()[before:]
                check(f"{len(new)} new token request(s)", len(new) == 1)
                check(
                    f"up-scoped token requested with scope=\"{new[0].form.get('scope')}\"",
                    "invoices:write" in new[0].form.get("scope", "").split() and new[0].form.get("resource") == args.url,
                )
                sc = r.structured_content or {}
                check(f"void_invoice after step-up → {json.dumps(sc)}", not r.is_error and "void" in json.dumps(sc).lower())
            elif args.scenario == "fastmcp":
                r = await client.call_tool("add", {"a": 2, "b": 40})
                check(f"add(2, 40) → {r.structured_content} / {r.content[0].text}", not r.is_error and r.structured_content == {"result": 42})
                r = await client.call_tool("shout", {"text": "through the gateway"})
                check(f"shout → {r.content[0].text}", not r.is_error and r.content[0].text == "THROUGH THE GATEWAY")
                r = await client.call_tool("env_names", {})
                env = (r.structured_content or {}).get("result", [])
                check(f"env_names → {' '.join(env)} (none of the gateway's)", "PATH" in env and not any(n.startswith(("INTEROP_", "GATEHOUSE", "RUST_LOG")) for n in env))

                async def answer(name: str) -> str:
                    try:
                        return f"result {(await client.call_tool(name, {})).model_dump_json()}"
                    except Exception as e:  # the protocol error, compared as text
                        return f"{type(e).__name__}: {e}".replace(name, "<name>")

                hidden, missing = await answer("forbidden"), await answer("no_such_tool")
                check(f"hidden tool answered as a missing one: {hidden}", hidden == missing and "result" not in hidden)
            else:
                raise AssertionError(f"unknown scenario {args.scenario}")
    except BaseException:
        for e in log:
            print(f"  {e.method} {e.url} → {e.status}" + (f" [{e.challenge}]" if e.challenge else ""), file=sys.stderr)
        raise
    print("OK")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--issuer", required=True)
    p.add_argument("--client", default="billing-reader")
    p.add_argument("--scope", default="invoices:read")
    p.add_argument("--scenario", default="discovery")
    p.add_argument("--invoice", default="INV-2041")
    p.add_argument("--mode", default="legacy")
    anyio.run(run, p.parse_args())


if __name__ == "__main__":
    main()

# The gateway rows' peer: FastMCP's own proxy with its own bearer-token check, in front of the
# same echo upstream as `gatehouse proxy` — what a Python team would put up instead of Gatehouse.
# As FastMCP documents it, without tuning:
# - `create_proxy(URL)`: the proxy's default session strategy (a fresh client session to the
#   upstream for every request, so no request sees another's context);
# - `JWTVerifier` on the issuer's JWKS (ES256), checking issuer and audience and requiring the
#   scope the gateway's policy requires for `echo`;
# - served stateless with JSON answers (as the gateway and the upstream are), uvicorn's access
#   log off (neither the gateway nor the TypeScript peer writes a line per request to a console).
#
# Usage: python server.py PORT ISSUER_URL RESOURCE_URL UPSTREAM_URL

import sys

from fastmcp.server import create_proxy
from fastmcp.server.auth.providers.jwt import JWTVerifier

port, issuer, resource, upstream = sys.argv[1:5]

auth = JWTVerifier(
    jwks_uri=f"{issuer}/jwks",
    issuer=issuer,
    audience=resource,
    algorithm="ES256",
    required_scopes=["invoices:read"],
    base_url=f"http://127.0.0.1:{port}",
)
proxy = create_proxy(upstream, name="fastmcp-peer", auth=auth)
proxy.run(
    transport="http",
    host="127.0.0.1",
    port=int(port),
    path="/mcp",
    stateless_http=True,
    json_response=True,
    show_banner=False,
    log_level="WARNING",
    uvicorn_config={"access_log": False},
)

"""A stdio MCP server built on the official Python SDK's MCPServer (FastMCP in mcp 1.x), for the
gateway scenarios: it reports what it was started with — its process id and the names of its
environment variables — so the harness can prove which process served a user and that the
gateway's own environment never reached it. `admin_reset` is a tool a gateway policy should hide.
"""

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("interop-stdio-python")


@server.tool()
def whoami() -> dict:
    """This process's id and the names of its environment variables."""
    return {"pid": os.getpid(), "env": sorted(os.environ)}


@server.tool()
def echo(text: str) -> str:
    """Says the text back."""
    return text


@server.tool()
def admin_reset() -> str:
    """A dangerous tool a gateway policy should hide."""
    return "reset"


if __name__ == "__main__":
    server.run("stdio")

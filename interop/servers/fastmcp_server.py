"""A stdio MCP server built on FastMCP (PyPI `fastmcp`, pinned in requirements-fastmcp.txt), the
most used Python server framework: an upstream of `gatehouse proxy` in interop/.

Tools:
  add(a, b)        -> a + b (structured output, from the return annotation)
  shout(text)      -> text upper-cased
  env_names()      -> the names of the variables in this process's environment (never values):
                      proves the gateway's own environment does not reach the child
  forbidden()      -> not named by the gateway policy: must stay hidden
"""

import os

from fastmcp import FastMCP

mcp = FastMCP("gatehouse-interop-fastmcp")


@mcp.tool
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@mcp.tool
def shout(text: str) -> str:
    """Returns the text upper-cased."""
    return text.upper()


@mcp.tool
def env_names() -> list[str]:
    """Names of the environment variables this server sees (no values)."""
    return sorted(os.environ)


@mcp.tool
def forbidden() -> str:
    """A tool the gateway's policy does not name."""
    return "this must never be reachable through the gateway"


if __name__ == "__main__":
    # stdio is FastMCP's default transport; the banner goes to stderr and is noise in logs.
    mcp.run(show_banner=False)

"""A small MCP server over stdio for fault tests: ``echo`` answers, ``hang`` never does, and
``freeze`` blocks the whole server (it no longer answers anything, pings included).

Each start appends the process id to the file named by ``KONAK_TEST_PIDS``, so that a test
can stop (SIGSTOP) or kill the server it talks to and count its restarts.
"""

from __future__ import annotations

import asyncio
import os
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("fault-peer")


@server.tool(name="echo")
async def echo(message: str) -> str:
    """Say the message back."""
    return f"Echo: {message}"


@server.tool(name="hang")
async def hang() -> str:
    """Never answer (a tool stuck on something)."""
    await asyncio.Event().wait()
    return "never"


@server.tool(name="freeze")
async def freeze() -> str:
    """Block the event loop: the server is hung, though its process and pipes are fine."""
    time.sleep(3600)  # blocking on purpose
    return "never"


if __name__ == "__main__":
    with open(os.environ["KONAK_TEST_PIDS"], "a", encoding="utf-8") as pids:
        pids.write(f"{os.getpid()}\n")
    asyncio.run(server.run_stdio_async())

"""A stdio MCP server for reliability tests: its ``Record`` tool appends the turn it was
called for to a file (one line per execution), after an optional delay.

Run as ``python recorder_mcp.py <record file> <delay seconds>``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path


def main() -> None:
    """Serve ``Record`` over stdio."""
    from mcp.server.mcpserver import MCPServer

    record, delay_seconds = Path(sys.argv[1]), float(sys.argv[2])
    server = MCPServer("recorder")

    @server.tool(name="Record")
    async def record_turn(turn: str) -> str:
        """Record one execution for ``turn``."""
        await asyncio.sleep(delay_seconds)  # a tool that takes time, so turns pile up
        # One O_APPEND write per line: lines from concurrent calls never interleave.
        fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{turn}\n".encode())
        finally:
            os.close(fd)
        return f"Recorded {turn}."

    asyncio.run(server.run_stdio_async())


if __name__ == "__main__":
    main()

"""A stdio MCP server for the reliability suite: its ``Record`` tool appends one line per
execution, ``<turn> <epoch seconds when it started>``, to a file, after an optional delay;
each start appends the server's pid to ``KONAK_TEST_PIDS`` (when set), so a test can hang
or kill it.

Run as ``python recorder_mcp.py <record file> <delay seconds>``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path


def _append(path: Path, line: str) -> None:
    # One O_APPEND write per line: lines from concurrent calls never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def main() -> None:
    """Serve ``Record`` over stdio."""
    from mcp.server.mcpserver import MCPServer

    record, delay_seconds = Path(sys.argv[1]), float(sys.argv[2])
    if pids := os.environ.get("KONAK_TEST_PIDS"):
        _append(Path(pids), f"{os.getpid()}\n")
    server = MCPServer("recorder")

    @server.tool(name="Record")
    async def record_turn(turn: str) -> str:
        """Record one execution for ``turn``."""
        # An execution is timed when it starts (the hub must not start one after the
        # intent's expiry); then the tool takes its time, so turns pile up.
        started = time.time()
        await asyncio.sleep(delay_seconds)
        _append(record, f"{turn} {started:.6f}\n")
        return f"Recorded {turn}."

    asyncio.run(server.run_stdio_async())


if __name__ == "__main__":
    main()

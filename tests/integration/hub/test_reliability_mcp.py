"""Faults of MCP servers, with real processes (issue 13 row G).

A small MCP server (``fault_peer.py``) hangs (a tool blocks it whole) or is killed (SIGKILL)
while calls to it are in flight. The tests assert outcomes and counts, never timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from konak.devtools.mosquitto import Mosquitto
from konak.hub.breaker import CircuitState
from konak.hub.mcp_host import McpConnection

from .conftest import Device, fault_peer, hub_settings, intent

pytestmark = pytest.mark.integration


def _pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


def _count(running: Any, server: str, result: str) -> float:
    labels = {"server": server, "result": result}
    return float(running.hub.metrics.value("konak_hub_tool_call_seconds_count", labels))


async def _hang_two_calls(
    running: Any, devices: Callable[..., Device]
) -> tuple[McpConnection, list[Device]]:
    """Two devices' intents whose tool calls are in flight on the peer when this returns."""
    conn = running.hub.mcp.connection("acme", "peer")
    assert isinstance(conn, McpConnection)
    entered = 0
    both = asyncio.Event()
    call_once = conn._call_once

    async def spy(tool: str, arguments: dict[str, Any]) -> Any:
        nonlocal entered
        entered += 1
        if entered == 2:
            both.set()
        return await call_once(tool, arguments)

    conn._call_once = spy  # type: ignore[method-assign]
    pis = [devices("office-pi"), devices("hall-pi")]
    for n, pi in enumerate(pis):
        await pi.send(intent(pi.device, f"t-hang-000{n}", "hang"))
    await asyncio.wait_for(both.wait(), 20)
    conn._call_once = call_once  # type: ignore[method-assign]
    return conn, pis


@pytest.mark.parametrize("fault", ["hung", "crashed"])
async def test_calls_in_flight_fail_once_the_server_is_found_dead_and_its_replacement_serves(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Callable[..., Any],
    devices: Callable[..., Device],
    fault: str,
) -> None:
    pids = tmp_path / "pids"
    # Only finding the peer dead can end the calls in flight (their timeout is far away),
    # and only the good reconnect can close the circuit (its reset time is far away too).
    peer = fault_peer(
        pids,
        timeout_seconds=600,
        retries=0,
        failure_threshold=1,
        circuit_reset_seconds=600,
        backoff_initial_seconds=0.1,
        backoff_max_seconds=0.5,
    )
    running = await hubs(hub_settings(broker, tmp_path, (peer,)))
    conn, pis = await _hang_two_calls(running, devices)
    first = _pids(pids)[0]

    if fault == "hung":
        # A third call blocks the server whole: only an unanswered ping can tell.
        pis.append(devices("kitchen-pi"))
        await pis[-1].send(intent("kitchen-pi", "t-freeze-001", "freeze"))
    else:
        os.kill(first, signal.SIGKILL)
    try:
        in_flight = [await pi.reply(timeout=60) for pi in pis]
        await conn.wait_connects(2, 60)
        await pis[0].send(intent("office-pi", "t-after-0001", "echo", slots={"message": "back"}))
        after = await pis[0].reply(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(first, signal.SIGKILL)

    assert [r.outcome for r in in_flight] == ["error"] * len(pis)
    assert _count(running, "peer", "timeout") == 0
    assert (after.outcome, after.text) == ("ok", "Echo: back")
    assert len(_pids(pids)) == 2
    assert conn.breaker.state is CircuitState.CLOSED
    if fault == "hung":
        # Found dead by its unanswered ping, the peer's three calls in flight fail at once.
        assert _count(running, "peer", "server_dead") == 3

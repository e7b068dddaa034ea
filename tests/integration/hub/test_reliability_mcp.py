"""Faults of MCP servers and of konak-home's broker, with real processes (issue 13 rows B, G).

The real Mosquitto is killed and restarted, konak-home runs as the hub's stdio child, and a
small MCP server (``fault_peer.py``) hangs (a tool blocks it whole) or is killed (SIGKILL)
while calls to it are in flight. The tests assert outcomes and counts, never timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from konak.devtools.mosquitto import Mosquitto, free_port
from konak.hub.breaker import CircuitState
from konak.hub.errors import ToolError
from konak.hub.mcp_host import McpConnection
from konak.hub.mcp_servers.home import UNREACHABLE_TEXT
from konak.hub.settings import McpServerSettings
from konak.hub.speakable import result_text

from .conftest import (
    Device,
    ZigbeeLights,
    fault_peer,
    home_server,
    hub_settings,
    intent,
    start_everything_http,
    stop_process,
)

pytestmark = pytest.mark.integration

TURN_ON: dict[str, Any] = {"name": "kitchen light"}
# konak-home waits up to LINK_WAIT_SECONDS for its link on each attempt: this many attempts
# give it far more time than its reconnect back-off needs.
ATTEMPTS = 15


def _pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


def _count(running: Any, server: str, result: str) -> float:
    labels = {"server": server, "result": result}
    return float(running.hub.metrics.value("konak_hub_tool_call_seconds_count", labels))


async def test_konak_home_reconnects_after_a_broker_restart_and_switches_again(
    broker: Mosquitto, tmp_path: Path, hubs: Callable[..., Any], lights: ZigbeeLights
) -> None:
    # The circuit is the next test's subject: here every attempt reaches konak-home.
    home = replace(home_server(broker, tmp_path), failure_threshold=1000)
    running = await hubs(hub_settings(broker, tmp_path, (home,)))
    before = await running.hub.mcp.call("acme", "home", "HassTurnOn", TURN_ON)

    broker.kill()
    broker.start()  # the same port, a broker that knows none of its old clients
    await asyncio.to_thread(lights.wait_subscriptions, 2)
    answers = []
    for _ in range(ATTEMPTS):
        result = await running.hub.mcp.call("acme", "home", "HassTurnOn", TURN_ON)
        answers.append(result)
        if not result.is_error:
            break

    assert (before.is_error, result_text(before)) == (False, "Turned on the kitchen light.")
    assert not answers[-1].is_error, [result_text(a) for a in answers]
    assert result_text(answers[-1]) == "Turned on the kitchen light."
    # The SDK puts "Error executing tool HassTurnOn: " before the tool's own text.
    assert all(UNREACHABLE_TEXT in result_text(a) for a in answers[:-1])
    assert lights.commands == [("kitchen light", {"state": "ON"})] * 2


async def test_konak_home_without_its_broker_answers_is_error_and_that_opens_its_circuit(
    broker: Mosquitto, tmp_path: Path, hubs: Callable[..., Any]
) -> None:
    home = replace(home_server(broker, tmp_path), failure_threshold=2, circuit_reset_seconds=600)
    running = await hubs(hub_settings(broker, tmp_path, (home,)))

    broker.kill()
    refused = [await running.hub.mcp.call("acme", "home", "HassTurnOn", TURN_ON) for _ in "12"]
    with pytest.raises(ToolError) as third:
        await running.hub.mcp.call("acme", "home", "HassTurnOn", TURN_ON)

    assert [(r.is_error, UNREACHABLE_TEXT in result_text(r)) for r in refused] == [(True, True)] * 2
    assert third.value.code == "circuit_open"
    assert _count(running, "home", "tool_reported_error") == 2
    labels = {"tenant": "acme", "server": "home"}
    assert running.hub.metrics.value("konak_hub_mcp_circuit_open", labels) == 1


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


async def test_a_hung_streamable_http_server_fails_its_call_in_flight_and_its_replacement_serves(
    broker: Mosquitto, tmp_path: Path, hubs: Callable[..., Any], devices: Callable[..., Device]
) -> None:
    port = free_port()
    server = McpServerSettings(
        name="web",
        url=f"http://127.0.0.1:{port}/mcp",
        timeout_seconds=600,
        retries=0,
        failure_threshold=2,  # the dead call and the one made while down open it
        circuit_reset_seconds=600,
        backoff_initial_seconds=0.1,
        backoff_max_seconds=0.5,
    )
    first = start_everything_http(port)
    second = None
    try:
        running = await hubs(hub_settings(broker, tmp_path, (server,)))
        conn = running.hub.mcp.connection("acme", "web")
        assert isinstance(conn, McpConnection)
        in_flight = asyncio.Event()
        call_once = conn._call_once

        async def spy(tool: str, arguments: dict[str, Any]) -> Any:
            in_flight.set()
            return await call_once(tool, arguments)

        conn._call_once = spy  # type: ignore[method-assign]
        pi = devices("office-pi")
        long_op = intent(
            "office-pi", "t-web-long-01", "trigger-long-running-operation", slots={"duration": 300}
        )
        await pi.send(long_op)
        await asyncio.wait_for(in_flight.wait(), 20)
        os.kill(first.pid, signal.SIGSTOP)  # hung: the process and its socket stay
        failed = await pi.reply(timeout=60)
        stop_process(first)
        # Known dead and not back: a new call fails at once, not after its 600 s timeout.
        await pi.send(intent("office-pi", "t-web-down-01", "echo", slots={"message": "down"}))
        while_down = await pi.reply(timeout=60)
        second = start_everything_http(port)
        await conn.wait_connects(2, 60)
        await pi.send(intent("office-pi", "t-web-back-01", "echo", slots={"message": "back"}))
        after = await pi.reply(timeout=60)
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)

    assert (failed.outcome, while_down.outcome) == ("error", "error")
    assert _count(running, "web", "server_dead") == 1
    assert _count(running, "web", "not_connected") == 1
    assert _count(running, "web", "timeout") == 0
    assert (after.outcome, after.text) == ("ok", "Echo: back")
    assert conn.breaker.state is CircuitState.CLOSED

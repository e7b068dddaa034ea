"""McpConnection's call policy with its transport replaced at the ``_call_once`` seam."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from mcp.types import CallToolResult, TextContent, Tool, ToolAnnotations

from konak.hub.breaker import CircuitBreaker, CircuitState
from konak.hub.errors import ToolError
from konak.hub.mcp_host import McpConnection
from konak.hub.metrics import HubMetrics
from konak.hub.outbound import OutboundPolicy, OutboundRefused, parse_allow_rule
from konak.hub.settings import McpServerSettings


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _connection(**kw: Any) -> tuple[McpConnection, list[str]]:
    settings = McpServerSettings(name="s", url="http://127.0.0.1:1/mcp", **kw)
    conn = McpConnection("acme", settings, HubMetrics())
    conn.tools = {
        "look": Tool(name="look", input_schema={"type": "object"},
                     annotations=ToolAnnotations(readOnlyHint=True)),
        "act": Tool(name="act", input_schema={"type": "object"}),
    }  # fmt: skip
    attempts: list[str] = []

    async def hang(tool: str, arguments: dict[str, Any]) -> CallToolResult:
        attempts.append(tool)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    conn._call_once = hang  # type: ignore[method-assign]
    return conn, attempts


async def test_a_read_only_tool_is_retried_and_an_acting_tool_is_not() -> None:
    conn, attempts = _connection(timeout_seconds=0.01, retries=2, failure_threshold=100)

    with pytest.raises(ToolError) as look:
        await conn.call("look", {})
    with pytest.raises(ToolError) as act:
        await conn.call("act", {})

    assert attempts == ["look", "look", "look", "act"]
    assert (look.value.code, act.value.code) == ("timeout", "timeout")


async def test_a_tool_listed_as_read_only_in_the_config_is_retried() -> None:
    conn, attempts = _connection(timeout_seconds=0.01, retries=1, read_only_tools=("act",))

    with pytest.raises(ToolError):
        await conn.call("act", {})

    assert attempts == ["act", "act"]


async def test_an_open_circuit_fails_without_calling_the_server_and_is_told_once() -> None:
    conn, attempts = _connection(timeout_seconds=0.01, retries=0, failure_threshold=1)
    opened: list[tuple[str, str]] = []
    conn.on_circuit_open = lambda tenant, server: opened.append((tenant, server))
    with pytest.raises(ToolError):
        await conn.call("act", {})

    with pytest.raises(ToolError) as second:
        await conn.call("act", {})

    assert second.value.code == "circuit_open"
    assert attempts == ["act"]
    assert opened == [("acme", "s")]


async def test_a_successful_call_returns_the_result() -> None:
    conn, _ = _connection()

    async def answer(tool: str, arguments: dict[str, Any]) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=f"{tool} {arguments}")])

    conn._call_once = answer  # type: ignore[method-assign]
    result = await conn.call("act", {"x": 1})

    assert result.content == [TextContent(type="text", text="act {'x': 1}")]


async def test_a_tenants_server_stored_with_a_host_header_is_refused_before_connecting() -> None:
    allow = OutboundPolicy(allow=(parse_allow_rule("127.0.0.1"),))
    settings = McpServerSettings(
        name="s", url="http://127.0.0.1:1/mcp", headers={"Host": "other.acme"}, outbound=allow
    )
    conn = McpConnection("globex", settings, HubMetrics())

    with pytest.raises(OutboundRefused, match="Host"):
        await conn._check_outbound()
    # the operator's own (hub.toml) server with the same header is not restricted
    await McpConnection(
        "acme", dataclasses.replace(settings, outbound=None), HubMetrics()
    )._check_outbound()


async def test_a_result_with_is_error_counts_against_the_circuit_and_is_not_retried() -> None:
    conn, _ = _connection(retries=2, failure_threshold=2)
    attempts: list[str] = []

    async def refuse(tool: str, arguments: dict[str, Any]) -> CallToolResult:
        attempts.append(tool)
        text = TextContent(type="text", text="I can't reach the home's devices right now.")
        return CallToolResult(content=[text], is_error=True)

    conn._call_once = refuse  # type: ignore[method-assign]
    first = await conn.call("look", {})
    second = await conn.call("look", {})
    with pytest.raises(ToolError) as third:
        await conn.call("look", {})

    assert (first.is_error, second.is_error) == (True, True)
    assert attempts == ["look", "look"]
    assert third.value.code == "circuit_open"
    assert conn.breaker.state is CircuitState.OPEN
    reported = {"server": "s", "result": "tool_reported_error"}
    assert conn.metrics.value("konak_hub_tool_call_seconds_count", reported) == 2


async def test_a_cancelled_trial_call_does_not_keep_the_circuit_half_open() -> None:
    conn, _ = _connection(retries=0, failure_threshold=1, timeout_seconds=600)
    clock = Clock()
    conn.breaker = CircuitBreaker(1, 30, clock)
    started = asyncio.Event()

    async def fail(tool: str, arguments: dict[str, Any]) -> CallToolResult:
        raise ToolError("refused")

    async def hang(tool: str, arguments: dict[str, Any]) -> CallToolResult:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    conn._call_once = fail  # type: ignore[method-assign]
    with pytest.raises(ToolError):
        await conn.call("act", {})
    clock.now += 30
    conn._call_once = hang  # type: ignore[method-assign]
    trial = asyncio.create_task(conn.call("act", {}))
    await asyncio.wait_for(started.wait(), 5)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial

    assert conn.breaker.allow()


class HangingClient:
    """An MCP client whose calls never return (a hung server)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def call_tool(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_call_in_flight_fails_at_once_when_its_server_is_found_dead() -> None:
    conn, _ = _connection(timeout_seconds=600, failure_threshold=1)
    del conn._call_once  # the real one, over a client that hangs
    client = HangingClient()
    lost = asyncio.Event()
    conn._client, conn._lost = client, lost  # type: ignore[assignment]

    call = asyncio.create_task(conn.call("act", {}))
    await asyncio.wait_for(client.started.wait(), 5)
    await conn._end_session(lost)  # what the supervisor does when the peer is found dead
    with pytest.raises(ToolError) as failed:
        await asyncio.wait_for(call, 5)

    assert failed.value.code == "server_dead"
    assert conn.breaker.state is CircuitState.OPEN


async def test_a_call_made_while_the_server_is_known_down_fails_without_waiting() -> None:
    conn, _ = _connection(retries=0, timeout_seconds=600)
    del conn._call_once
    await conn._end_session(asyncio.Event())

    with pytest.raises(ToolError) as failed:
        await asyncio.wait_for(conn.call("act", {}), 5)

    assert failed.value.code == "not_connected"

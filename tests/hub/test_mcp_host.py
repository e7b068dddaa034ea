"""McpConnection's call policy with its transport replaced at the ``_call_once`` seam."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from mcp.types import CallToolResult, TextContent, Tool, ToolAnnotations

from konak.hub.errors import ToolError
from konak.hub.mcp_host import McpConnection
from konak.hub.metrics import HubMetrics
from konak.hub.outbound import OutboundPolicy, OutboundRefused, parse_allow_rule
from konak.hub.settings import McpServerSettings


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


async def test_an_open_circuit_fails_without_calling_the_server() -> None:
    conn, attempts = _connection(timeout_seconds=0.01, retries=0, failure_threshold=1)
    with pytest.raises(ToolError):
        await conn.call("act", {})

    with pytest.raises(ToolError) as second:
        await conn.call("act", {})

    assert second.value.code == "circuit_open"
    assert attempts == ["act"]


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

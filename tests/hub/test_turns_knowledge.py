"""Turns answered from knowledge: a transcript without an intent, HassGetKnowledge, routing
to a tool by similarity, and knowledge failing (fakes at the knowledge and MCP seams)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from mcp.types import CallToolResult, TextContent

from konak.hub.arbitration import Arbiter
from konak.hub.knowledge.answer import VoiceKnowledge
from konak.hub.knowledge.routing import ToolInfo
from konak.hub.knowledge.settings import KnowledgeSettings
from konak.hub.knowledge.types import BackendUnavailable
from konak.hub.mcp_host import ToolRef
from konak.hub.metrics import HubMetrics
from konak.hub.settings import Binding, TenantSettings, ToolCall
from konak.hub.store import Store
from konak.hub.turns import MISSING_TEXT, NOT_KNOWN_TEXT, NOT_UNDERSTOOD_TEXT, TurnProcessor
from konak.protocol import Intent, Reply

from .knowledge.voice_fakes import FakeKnowledge

TOOLS = (
    ToolInfo("fleet", "list_devices", "List the devices and their state", read_only=True),
    ToolInfo("fleet", "announce", "Announce a message on every speaker", required=("text",)),
    ToolInfo("fleet", "set_volume", "Set the speaker volume level", required=("level",)),
)


class Host:
    """Offers TOOLS' tools; records calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def find_tool(self, tenant: str, tool: str, server: str | None = None) -> ToolRef | None:
        return ToolRef("fleet", tool, False) if tool in {t.name for t in TOOLS} else None

    async def wait_first_connect(self, tenant: str, timeout_seconds: float) -> bool:
        return False

    async def call(
        self, tenant: str, server: str, tool: str, arguments: dict[str, Any]
    ) -> CallToolResult:
        self.calls.append((tool, arguments))
        return CallToolResult(content=[TextContent(type="text", text=f"{tool} ran.")])


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    store = Store(tmp_path / "hub.sqlite3")
    host, knowledge, replies = Host(), FakeKnowledge(), []
    knowledge.add("acme", "notes", "bins", "The bins are collected on Tuesday mornings.")

    async def publish(reply: Reply) -> None:
        replies.append(reply)

    settings = KnowledgeSettings(answer_threshold=0.5, routing_threshold=0.5)
    tenant = TenantSettings(
        "acme", bindings={"HassGetKnowledge": Binding("HassGetKnowledge", (ToolCall("x"),))}
    )
    voice = VoiceKnowledge(knowledge, lambda: settings, lambda t: TOOLS if t == "acme" else ())
    processor = TurnProcessor(
        store,
        host,
        Arbiter(0.01),
        HubMetrics(),
        publish,
        lambda: {"acme": TenantSettings("acme"), "bound": tenant},
        knowledge=voice,
    )
    yield processor, host, knowledge, replies
    store.close()


_turns = itertools.count(1)


def _intent(text: str, name: str | None = None, tenant: str = "acme", **slots: Any) -> Intent:
    turn_id = f"t-{next(_turns):08d}"
    return Intent(tenant=tenant, device="pi", turn_id=turn_id, text=text, intent=name, slots=slots)


async def test_a_transcript_without_an_intent_is_answered_from_the_nearest_passage(
    setup: Any,
) -> None:
    processor, host, _, replies = setup

    await processor.handle(_intent("when are the bins collected"))

    assert [(r.outcome, r.text) for r in replies] == [
        ("ok", "The bins are collected on Tuesday mornings.")
    ]
    assert host.calls == []


async def test_a_knowledge_intent_takes_its_question_from_the_slot(setup: Any) -> None:
    processor, _, _, replies = setup

    await processor.handle(_intent("ask my notes", "HassGetKnowledge", question="bins collected"))
    await processor.handle(_intent("ask my notes", "HassGetKnowledge", question="best pizza"))

    assert [(r.outcome, r.text) for r in replies] == [
        ("ok", "The bins are collected on Tuesday mornings."),
        ("no_route", NOT_KNOWN_TEXT),
    ]


async def test_a_tenants_binding_of_the_knowledge_intent_wins(setup: Any) -> None:
    processor, _, _, replies = setup

    await processor.handle(_intent("bins", "HassGetKnowledge", tenant="bound", question="bins"))

    assert [r.outcome for r in replies] == ["no_route"]  # its tool "x" is not offered


async def test_a_transcript_near_a_tool_calls_it_with_the_arguments_the_turn_fills(
    setup: Any,
) -> None:
    processor, host, _, replies = setup

    await processor.handle(_intent("list the devices and their state"))
    await processor.handle(_intent("announce a message on every speaker"))
    await processor.handle(_intent("set the speaker volume level"))

    assert host.calls == [
        ("list_devices", {}),
        ("announce", {"text": "announce a message on every speaker"}),
    ]
    assert [(r.outcome, r.text) for r in replies] == [
        ("ok", "list_devices ran."),
        ("ok", "announce ran."),
        ("no_route", MISSING_TEXT),
    ]


async def test_a_transcript_near_nothing_is_not_understood(setup: Any) -> None:
    processor, host, _, replies = setup

    await processor.handle(_intent("tell me a joke"))
    await processor.handle(_intent("when are the bins collected", tenant="globex"))

    assert [(r.outcome, r.text) for r in replies] == [("no_route", NOT_UNDERSTOOD_TEXT)] * 2
    assert host.calls == []


async def test_knowledge_that_fails_leaves_the_turn_not_understood(
    setup: Any, caplog: pytest.LogCaptureFixture
) -> None:
    processor, _, knowledge, replies = setup

    async def broken(texts: Any) -> Any:
        raise BackendUnavailable("no embedding model")

    knowledge.embed = broken

    await processor.handle(_intent("when are the bins collected"))

    assert [(r.outcome, r.text) for r in replies] == [("no_route", NOT_UNDERSTOOD_TEXT)]
    assert "knowledge unavailable (knowledge_unavailable): no embedding model" in caplog.text

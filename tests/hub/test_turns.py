"""The turn processor with a fake MCP host at its seam and a real SQLite store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from mcp.types import CallToolResult, TextContent

from konak.hub.arbitration import Arbiter
from konak.hub.errors import ToolError
from konak.hub.mcp_host import ToolRef
from konak.hub.metrics import HubMetrics
from konak.hub.settings import Binding, TenantSettings, ToolCall
from konak.hub.store import Store
from konak.hub.turns import TurnProcessor
from konak.protocol import Intent, Reply


class FakeHost:
    """Offers tools ``a`` and ``b``; ``a`` waits until ``b`` has started (so only parallel
    calls can finish) and ``broken`` always fails."""

    def __init__(self) -> None:
        self.b_started = asyncio.Event()
        self.calls: list[tuple[str, dict[str, Any]]] = []

        self.starting = False  # a server still making its first connection offers "late"
        self.waited = 0

    def find_tool(self, tenant: str, tool: str, server: str | None = None) -> ToolRef | None:
        known = tenant == "acme" and tool in ("a", "b", "broken")
        return ToolRef("fake", tool, False) if known else None

    async def wait_first_connect(self, tenant: str, timeout_seconds: float) -> bool:
        self.waited += 1
        if not self.starting:
            return False
        self.starting = False
        self.find_tool = lambda t, tool, server=None: ToolRef("late", tool, False)  # type: ignore[method-assign]
        return True

    async def call(
        self, tenant: str, server: str, tool: str, arguments: dict[str, Any]
    ) -> CallToolResult:
        self.calls.append((tool, arguments))
        if tool == "broken":
            raise ToolError("it broke", code="timeout")
        if tool == "a":
            await asyncio.wait_for(self.b_started.wait(), 5)
        else:
            self.b_started.set()
        return CallToolResult(content=[TextContent(type="text", text=f"{tool} done.")])


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    store = Store(tmp_path / "hub.sqlite3")
    host = FakeHost()
    replies: list[Reply] = []

    async def publish(reply: Reply) -> None:
        replies.append(reply)

    tenant = TenantSettings(
        "acme",
        bindings={
            "Both": Binding("Both", (ToolCall("a"), ToolCall("b", arguments={"n": "{room}"}))),
            "Half": Binding("Half", (ToolCall("b"), ToolCall("broken"))),
        },
    )
    processor = TurnProcessor(
        store,
        host,
        Arbiter(0.01),
        HubMetrics(),
        publish,
        lambda: {"acme": tenant},
    )
    yield processor, host, replies
    store.close()


def _intent(
    name: str | None, turn: str = "t-1234567890", expires_at: float | None = None, **slots: Any
) -> Intent:
    return Intent(
        tenant="acme",
        device="pi",
        turn_id=turn,
        text="x",
        intent=name,
        slots=slots,
        expires_at=expires_at,
    )


async def test_independent_calls_of_one_turn_run_in_parallel(setup: Any) -> None:
    processor, host, replies = setup

    await processor.handle(_intent("Both", room="hall"))

    assert [(r.outcome, r.text) for r in replies] == [("ok", "a done. b done.")]
    assert sorted(host.calls) == [("a", {}), ("b", {"n": "hall"})]


async def test_an_intent_just_after_start_waits_for_servers_still_connecting(setup: Any) -> None:
    processor, host, replies = setup
    host.starting = True

    await processor.handle(_intent("late"))

    assert [(r.outcome, r.text) for r in replies] == [("ok", "late done.")]
    assert host.waited == 1


async def test_an_intent_no_server_offers_gets_no_route_without_waiting(setup: Any) -> None:
    processor, host, replies = setup

    await processor.handle(_intent("Unknown"))

    assert [(r.outcome, r.text) for r in replies] == [("no_route", "I can't do that yet.")]
    assert host.waited == 1


async def test_a_failed_call_among_several_gives_a_partial_failure_reply(setup: Any) -> None:
    processor, _, replies = setup

    await processor.handle(_intent("Half"))

    assert [(r.outcome, r.text) for r in replies] == [("error", "Sorry, part of that didn't work.")]


async def test_a_binding_missing_its_slot_asks_for_details(setup: Any) -> None:
    processor, host, replies = setup

    await processor.handle(_intent("Both"))

    assert [(r.outcome, r.text) for r in replies] == [
        ("error", "Sorry, I need more details to do that.")
    ]
    assert host.calls == []


async def test_a_transcript_without_an_intent_is_not_understood(setup: Any) -> None:
    processor, _, replies = setup

    await processor.handle(_intent(None))

    assert [(r.outcome, r.text) for r in replies] == [
        ("no_route", "Sorry, I didn't understand that.")
    ]


async def test_a_redelivery_of_a_finished_turn_repeats_its_reply_and_is_not_executed(
    setup: Any,
) -> None:
    # The device sends an intent again until it hears a reply: one that lost the first
    # reply must still be able to speak it.
    processor, host, replies = setup

    await processor.handle(_intent("b"))
    await processor.handle(_intent("b"))

    assert [(r.outcome, r.text, r.speak, r.repeat) for r in replies] == [
        ("ok", "b done.", True, False),
        ("ok", "b done.", True, True),
    ]
    assert host.calls == [("b", {})]
    assert processor.metrics.value("konak_hub_intents_total", {"outcome": "duplicate"}) == 1


async def test_a_redelivery_while_the_turn_runs_sends_nothing_and_the_one_reply_follows(
    setup: Any,
) -> None:
    processor, host, replies = setup
    started, release = asyncio.Event(), asyncio.Event()
    call = host.call

    async def held_call(*args: Any) -> Any:
        started.set()
        await release.wait()
        return await call(*args)

    host.call = held_call
    first = asyncio.create_task(processor.handle(_intent("b")))
    await asyncio.wait_for(started.wait(), 5)

    await processor.handle(_intent("b"))
    assert replies == []
    release.set()
    await first

    assert [(r.outcome, r.text, r.repeat) for r in replies] == [("ok", "b done.", False)]
    assert host.calls == [("b", {})]


async def test_an_intent_that_arrives_after_its_expiry_is_answered_expired_and_not_executed(
    setup: Any,
) -> None:
    processor, host, replies = setup
    processor.clock = lambda: 1_000.0

    await processor.handle(_intent("b", expires_at=999.0))

    assert [(r.outcome, r.text, r.speak) for r in replies] == [
        ("expired", "That came too late, so I didn't do it.", True)
    ]
    assert host.calls == []
    assert processor.metrics.value("konak_hub_intents_total", {"outcome": "expired"}) == 1


async def test_an_intent_that_arrives_before_its_expiry_is_executed(setup: Any) -> None:
    processor, host, replies = setup
    processor.clock = lambda: 1_000.0

    await processor.handle(_intent("b", expires_at=1_000.6))  # 0.1 s to spare at the call

    assert [(r.outcome, r.text) for r in replies] == [("ok", "b done.")]
    assert host.calls == [("b", {})]


async def test_a_redelivery_of_an_expired_intent_repeats_expired_and_is_still_not_executed(
    setup: Any,
) -> None:
    processor, host, replies = setup
    processor.clock = lambda: 1_000.0
    await processor.handle(_intent("b", expires_at=999.0))
    processor.clock = lambda: 0.0  # even if the hub's clock is then set back

    await processor.handle(_intent("b", expires_at=999.0))

    assert [(r.outcome, r.speak, r.repeat) for r in replies] == [
        ("expired", True, False),
        ("expired", True, True),
    ]
    assert host.calls == []


async def test_an_intent_that_expires_while_its_server_first_connects_is_not_executed(
    setup: Any,
) -> None:
    # Valid on arrival; the tool's server was still connecting, and by the time it was
    # there the intent had expired: the tool must not start.
    processor, host, replies = setup
    now = [1_000.0]
    processor.clock = lambda: now[0]
    host.starting = True
    waited = host.wait_first_connect

    async def slow_connect(tenant: str, timeout_seconds: float) -> bool:
        now[0] += 5.0
        return await waited(tenant, timeout_seconds)

    host.wait_first_connect = slow_connect
    host.find_tool = lambda tenant, tool, server=None: None

    await processor.handle(_intent("b", expires_at=1_002.0))

    assert [(r.outcome, r.text) for r in replies] == [
        ("expired", "That came too late, so I didn't do it.")
    ]
    assert host.calls == []


async def test_a_reply_the_broker_does_not_take_is_sent_when_the_intent_comes_again(
    setup: Any,
) -> None:
    from konak.hub.errors import PublishError

    processor, host, replies = setup
    publish = processor.publish
    failing = [True]

    async def slow_broker(reply: Reply) -> None:
        if failing[0]:
            raise PublishError("not acknowledged within 10s")
        await publish(reply)

    processor.publish = slow_broker
    await processor.handle(_intent("b"))  # run once, its reply not taken: no traceback
    failing[0] = False
    await processor.handle(_intent("b"))  # the device sends it again

    assert [(r.outcome, r.repeat) for r in replies] == [("ok", True)]
    assert host.calls == [("b", {})]
    assert processor.take_unanswered() == []  # now noted as answered


async def test_a_finished_turn_keeps_what_was_heard_and_its_latency_and_is_told(
    setup: Any,
) -> None:
    processor, _, _ = setup
    finished: list[tuple[str, str]] = []
    processor.on_finished = lambda tenant, turn_id: finished.append((tenant, turn_id))
    processor.clock = lambda: 1000.0
    heard = _intent("Both", room="hall").model_copy(update={"speech_ended_at": 999.75})

    await processor.handle(heard)
    await processor.handle(heard)  # a redelivery: not executed, nor told, again

    turn = processor.store.turn("acme", heard.turn_id)
    assert (turn.text, turn.intent, turn.outcome, turn.reply_text) == (
        "x",
        "Both",
        "ok",
        "a done. b done.",
    )
    assert (turn.latency_ms, turn.finished_at) == (250.0, 1000.0)
    assert finished == [("acme", heard.turn_id)]

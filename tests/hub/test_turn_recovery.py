"""Turns a hub crash left unanswered (a real SQLite store, a fake MCP host): each is
answered at the next start, a turn that never finished as failed, and none runs again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from konak.hub.arbitration import Arbiter
from konak.hub.metrics import HubMetrics
from konak.hub.store import Store
from konak.hub.turns import STOPPED_TEXT, TurnProcessor
from konak.protocol import Intent, Reply


class NoTools:
    """An MCP host that offers nothing (every test here answers without a tool)."""

    def find_tool(self, tenant: str, tool: str, server: str | None = None) -> None:
        return None

    async def wait_first_connect(self, tenant: str, timeout_seconds: float) -> bool:
        return False

    async def call(self, *args: Any) -> Any:
        raise AssertionError("no tool call expected")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "hub.sqlite3"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    s = Store(db)
    yield s
    s.close()


def _processor(store: Store, replies: list[Reply]) -> TurnProcessor:
    async def publish(reply: Reply) -> None:
        replies.append(reply)

    return TurnProcessor(store, NoTools(), Arbiter(0.01), HubMetrics(), publish, dict)


def _intent(turn: str) -> Intent:
    return Intent(tenant="acme", device="pi", turn_id=turn, text="x", intent="Nothing")


async def test_the_claim_is_committed_before_the_intent_is_acknowledged(
    store: Store, db: Path
) -> None:
    seen_by_another_connection: list[object] = []

    def claimed() -> None:
        other = Store(db)
        seen_by_another_connection.append(other.claim_turn("acme", "t-0000000001", "pi"))
        other.close()

    await _processor(store, []).handle(_intent("t-0000000001"), claimed)

    assert len(seen_by_another_connection) == 1
    assert seen_by_another_connection[0] is not None  # the claim was already on disk


async def test_turns_a_crash_left_unanswered_are_answered_once_at_the_next_start(
    store: Store,
) -> None:
    # What a SIGKILL leaves: one turn claimed (its tool may have run), one finished whose
    # reply never reached the broker, one done.
    store.claim_turn("acme", "t-claimed-01", "pi")
    store.claim_turn("acme", "t-answering", "pi")
    store.finish_turn("acme", "t-answering", "ok", "Turned on the light.")
    store.claim_turn("acme", "t-done-0001", "pi")
    store.finish_turn("acme", "t-done-0001", "ok", "Done.")
    store.replied("acme", "t-done-0001")
    replies: list[Reply] = []
    processor = _processor(store, replies)

    await processor.answer(processor.take_unanswered())
    again = processor.take_unanswered()
    await processor.handle(_intent("t-claimed-01"))  # the device sends it once more

    assert [(r.turn_id, r.outcome, r.text) for r in replies] == [
        ("t-claimed-01", "error", STOPPED_TEXT),
        ("t-answering", "ok", "Turned on the light."),
        ("t-claimed-01", "error", STOPPED_TEXT),  # sent again: the device may have lost it
    ]
    assert again == []
    assert processor.metrics.value("konak_hub_intents_total", {"outcome": "interrupted"}) == 1


async def test_turns_past_their_expiry_are_abandoned_not_answered(store: Store) -> None:
    # After an overload: replies the broker never took, to devices that have since given up.
    now = time.time()
    store.claim_turn("acme", "t-gone-claim", "pi", expires_at=now - 60)
    store.claim_turn("acme", "t-gone-answe", "pi", expires_at=now - 1)
    store.finish_turn("acme", "t-gone-answe", "ok", "Turned on the light.")
    store.claim_turn("acme", "t-still-wait", "pi", expires_at=now + 60)
    store.finish_turn("acme", "t-still-wait", "ok", "Done.")
    store.claim_turn("acme", "t-no-expiry1", "pi")  # an old device: no expiry, still answered
    replies: list[Reply] = []
    processor = _processor(store, replies)

    await processor.answer(processor.take_unanswered())

    assert sorted(r.turn_id for r in replies) == ["t-no-expiry1", "t-still-wait"]
    states = dict(store._db.execute("SELECT turn_id, state FROM turns").fetchall())
    assert states["t-gone-claim"] == states["t-gone-answe"] == "abandoned"
    assert processor.take_unanswered() == []
    # A copy still in the broker arriving later is not run again; its recorded reply goes.
    await processor.handle(_intent("t-gone-answe"))
    assert [r.outcome for r in replies if r.turn_id == "t-gone-answe"] == ["ok"]


async def test_a_turn_whose_reply_was_sent_is_not_answered_again(store: Store) -> None:
    replies: list[Reply] = []
    processor = _processor(store, replies)

    await processor.handle(_intent("t-0000000002"))

    assert [r.outcome for r in replies] == ["no_route"]
    assert processor.take_unanswered() == []

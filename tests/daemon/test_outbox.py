"""The persistent intent queue keeps order and survives a reopen."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from konak.daemon.errors import QueueError
from konak.daemon.outbox import Outbox


def test_intents_come_out_in_the_order_they_went_in(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "q.sqlite3")
    for i in range(3):
        box.put(f"turn-{i:04d}", "t", f"p{i}".encode())
    seen = []
    while (item := box.head()) is not None:
        seen.append(item.turn_id)
        box.remove(item.seq)
    assert seen == ["turn-0000", "turn-0001", "turn-0002"]


def test_queued_intents_survive_closing_and_reopening(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "q.sqlite3")
    box.put("turn-a", "topic/a", b"a")
    box.put("turn-b", "topic/b", b"b")
    box.close()
    reopened = Outbox(tmp_path / "q.sqlite3")
    assert len(reopened) == 2
    head = reopened.head()
    assert head is not None
    assert (head.turn_id, head.topic, head.payload) == ("turn-a", "topic/a", b"a")


def test_the_same_turn_is_queued_once(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "q.sqlite3")
    box.put("turn-a", "t", b"1")
    box.put("turn-a", "t", b"2")
    assert len(box) == 1


def test_a_waiting_sender_wakes_when_an_intent_is_queued(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "q.sqlite3")
    got: list[str] = []
    thread = threading.Thread(
        target=lambda: got.append(getattr(box.wait_for_head(30), "turn_id", ""))
    )
    thread.start()
    box.put("turn-x", "t", b"x")
    thread.join(timeout=30)
    assert got == ["turn-x"]


def test_an_unusable_queue_path_is_a_queue_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(QueueError, match="cannot open the intent queue"):
        Outbox(blocker / "q.sqlite3")

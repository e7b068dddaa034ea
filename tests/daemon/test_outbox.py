"""The persistent intent queue keeps order, survives a reopen, keeps what it cannot send as
dead letters, and upgrades the files of earlier versions."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

import pytest

from konak.daemon.errors import QueueError
from konak.daemon.outbox import ABANDONED, EXPIRED, REFUSED, SCHEMA_VERSION, Outbox
from tests.conftest import fill_disk


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


class Clock:
    """A settable clock (epoch seconds)."""

    def __init__(self, now: float = 1_790_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_an_intent_is_expired_from_its_expiry_on_and_one_without_expiry_never_is(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "q.sqlite3")
    box.put("turn-exp", "t", b"x", expires_at=100.0)
    box.put("turn-forever", "t", b"y")
    first = box.head()
    assert first is not None
    assert (first.expired(99.9), first.expired(100.0)) == (False, True)
    box.remove(first.seq)
    second = box.head()
    assert second is not None
    assert second.expires_at is None
    assert not second.expired(1e12)


def test_a_dead_letter_leaves_the_queue_and_keeps_the_intent_with_its_reason_and_time(
    tmp_path: Path,
) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "q.sqlite3", clock=clock)
    box.put("turn-a", "topic/a", b"a", expires_at=clock.now + 30)
    box.put("turn-b", "topic/b", b"b")
    head = box.head()
    assert head is not None
    clock.now += 5

    moved = box.dead_letter(head.seq, REFUSED, reason_code=0x87, detail="Not authorized")

    assert moved is not None
    assert [d.turn_id for d in box.dead_letters()] == ["turn-a"]
    assert box.dead_letters()[0] == moved
    assert (moved.topic, moved.payload, moved.reason, moved.reason_code, moved.detail) == (
        "topic/a",
        b"a",
        "refused",
        0x87,
        "Not authorized",
    )
    assert (moved.queued_at, moved.expires_at, moved.dead_at) == (
        clock.now - 5,
        clock.now + 25,
        clock.now,
    )
    next_head = box.head()
    assert next_head is not None
    assert next_head.turn_id == "turn-b"
    assert len(box) == 1


def test_dead_letters_are_counted_by_reason_and_survive_reopening(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "q.sqlite3")
    for i, reason in enumerate([EXPIRED, REFUSED, EXPIRED]):
        box.put(f"turn-{i:04d}", "t", b"x", expires_at=1.0)
        head = box.head()
        assert head is not None
        box.dead_letter(head.seq, reason)
    box.close()

    reopened = Outbox(tmp_path / "q.sqlite3")

    assert (reopened.dead_letter_count(), reopened.expired_count(), len(reopened)) == (3, 2, 0)
    assert [d.reason for d in reopened.dead_letters()] == ["expired", "refused", "expired"]


def test_dead_lettering_an_intent_that_is_no_longer_queued_changes_nothing(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "q.sqlite3")
    box.put("turn-a", "t", b"a")
    head = box.head()
    assert head is not None
    box.remove(head.seq)

    assert box.dead_letter(head.seq, EXPIRED) is None
    assert box.dead_letter_count() == 0


def test_a_waiter_wakes_when_an_intent_becomes_a_dead_letter(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "q.sqlite3")
    box.put("turn-a", "t", b"a")
    head = box.head()
    assert head is not None
    woke: list[bool] = []
    thread = threading.Thread(
        target=lambda: woke.append(box.wait_for(lambda: box.dead_letter_count() == 1, 30))
    )
    thread.start()
    box.dead_letter(head.seq, REFUSED, reason_code=0x87)
    thread.join(timeout=30)
    assert woke == [True]


OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    turn_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
)
"""


def test_a_queue_file_of_the_first_schema_is_upgraded_and_keeps_its_intents(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as old:
        old.execute(OLD_SCHEMA)
        old.executemany(
            "INSERT INTO outbox (turn_id, topic, payload) VALUES (?, ?, ?)",
            [("turn-old-1", "t/1", b"1"), ("turn-old-2", "t/2", b"2")],
        )
        old.commit()

    box = Outbox(path)
    box.put("turn-new", "t/3", b"3", expires_at=5.0)

    queued = []
    while (item := box.head()) is not None:
        queued.append((item.turn_id, item.payload, item.expires_at))
        box.remove(item.seq)
    assert queued == [
        ("turn-old-1", b"1", None),
        ("turn-old-2", b"2", None),
        ("turn-new", b"3", 5.0),
    ]
    box.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert Outbox(path).dead_letters() == []


def test_a_queue_file_from_a_newer_daemon_is_refused_with_its_version(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as newer:
        newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(QueueError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        Outbox(path)


def test_an_intent_the_broker_has_stays_queued_until_the_hub_answers_and_is_resent_when_due(
    tmp_path: Path,
) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "q.sqlite3", clock=clock)
    box.put("turn-a", "t", b"a")
    box.put("turn-b", "t", b"b")
    first = box.head(resend_seconds=5.0)
    assert first is not None
    box.mark_sent(first.seq)

    after_ack = box.head(resend_seconds=5.0)
    clock.now += 5.0
    due_again = box.head(resend_seconds=5.0)

    assert after_ack is not None
    assert after_ack.turn_id == "turn-b"  # the next one, while turn-a waits for its reply
    assert due_again is not None
    assert (due_again.turn_id, due_again.sent_at) == ("turn-a", clock.now - 5.0)
    assert (len(box), box.unsent_count()) == (2, 1)
    assert box.answered("turn-a") is True
    assert box.answered("turn-a") is False  # a second reply (a duplicate) changes nothing
    left = box.head()
    assert left is not None
    assert (left.turn_id, len(box)) == ("turn-b", 1)


def test_after_a_reconnect_every_unanswered_intent_is_sent_again_in_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "q.sqlite3")
    for name in ("turn-a", "turn-b", "turn-c"):
        box.put(name, "t", name.encode())
    for _ in range(2):
        head = box.head(resend_seconds=600.0)
        assert head is not None
        box.mark_sent(head.seq)

    assert box.resend_all() == 2

    order = []
    while (item := box.head(resend_seconds=600.0)) is not None:
        order.append(item.turn_id)
        box.mark_sent(item.seq)
    assert order == ["turn-a", "turn-b", "turn-c"]


def test_a_withdrawn_intent_is_an_abandoned_dead_letter_and_never_sent_again(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "q.sqlite3")
    box.put("turn-a", "t", b"a", expires_at=1e12)
    head = box.head()
    assert head is not None
    box.mark_sent(head.seq)

    moved = box.withdraw("turn-a", "no reply within 8.0s; the person was told it failed")
    box.resend_all()

    assert moved is not None
    assert (moved.turn_id, moved.reason, moved.detail) == (
        "turn-a",
        ABANDONED,
        "no reply within 8.0s; the person was told it failed",
    )
    assert (box.head(), len(box)) == (None, 0)
    assert box.withdraw("turn-a", "again") is None


def test_a_queue_file_of_the_second_schema_is_upgraded_and_its_intents_count_as_unsent(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as old:
        old.execute(OLD_SCHEMA)
        old.execute("ALTER TABLE outbox ADD COLUMN queued_at REAL")
        old.execute("ALTER TABLE outbox ADD COLUMN expires_at REAL")
        old.execute("INSERT INTO outbox (turn_id, topic, payload) VALUES ('turn-v1', 't', x'31')")
        old.execute("PRAGMA user_version = 1")
        old.commit()

    box = Outbox(path)

    head = box.head()
    assert head is not None
    assert (head.turn_id, head.sent_at, box.unsent_count()) == ("turn-v1", None, 1)


def test_a_full_disk_refuses_only_the_new_intent_keeps_the_queue_and_passes_when_space_returns(
    tiny_tmpfs: Path,
) -> None:
    box = Outbox(tiny_tmpfs / "q.sqlite3")
    box.put("turn-before-1", "t", b"1" * 300)
    box.put("turn-before-2", "t", b"2" * 300)
    filler = fill_disk(tiny_tmpfs)

    with pytest.raises(QueueError) as info:
        box.put("turn-full", "t", b"3" * 300)

    assert info.value.message == "cannot queue intent turn-full: database or disk is full"
    assert len(box) == 2
    box.close()  # closed even though its checkpoint cannot be written
    filler.unlink()
    box = Outbox(tiny_tmpfs / "q.sqlite3")
    box.put("turn-after", "t", b"4" * 300)
    queued = []
    while (item := box.head()) is not None:
        queued.append(item.turn_id)
        box.remove(item.seq)
    assert queued == ["turn-before-1", "turn-before-2", "turn-after"]
    box.close()

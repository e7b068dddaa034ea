"""The persistent intent queue: written before publishing, removed only when the hub answers.

The broker's PUBACK only says the broker has the intent; a broker that crashes before it
saved it, or that lost the hub's session, drops it. So a published intent stays queued,
marked sent, and is sent again (after a reconnect, or when it has waited ``resend``
seconds) until the hub's reply removes it; the hub runs each turn id once, so a resend
is harmless. An intent that will never be delivered or answered (the broker refused it,
it expired, or the person was already told it failed) is moved to a dead-letter table in
the same file, with the reason and the time; nothing queued is deleted without a trace.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from konak.daemon.errors import QueueError
from konak.storage.sqlite import Schema, connect, transaction

logger = logging.getLogger(__name__)

# Dead-letter reasons.
EXPIRED: Final = "expired"
REFUSED: Final = "refused"
ABANDONED: Final = "abandoned"  # the turn already told the person it failed

_OUTBOX_V0 = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    turn_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
)
"""
_DEAD_LETTERS = """
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    turn_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    queued_at REAL,
    expires_at REAL,
    reason TEXT NOT NULL,
    reason_code INTEGER,
    detail TEXT NOT NULL,
    dead_at REAL NOT NULL
)
"""


def _to_v1(db: sqlite3.Connection) -> None:
    """Queue and expiry times on each intent; the dead-letter table."""
    db.execute(_OUTBOX_V0)  # a new file has no table yet
    columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
    for column in ("queued_at", "expires_at"):
        if column not in columns:
            db.execute(f"ALTER TABLE outbox ADD COLUMN {column} REAL")
    db.execute(_DEAD_LETTERS)


def _to_v2(db: sqlite3.Connection) -> None:
    """When each intent was last handed to the broker (NULL: not yet, or to be sent again)."""
    db.execute("ALTER TABLE outbox ADD COLUMN sent_at REAL")


# The file's schema: STEPS[n] takes it from PRAGMA user_version n to n + 1; 0 is the first
# release (the outbox table only).
SCHEMA: Final = Schema("the intent queue", (_to_v1, _to_v2), QueueError)
SCHEMA_VERSION: Final = SCHEMA.version


@dataclass(frozen=True)
class Queued:
    """One intent waiting to be sent, or sent and waiting for the hub's reply."""

    seq: int
    turn_id: str
    topic: str
    payload: bytes
    queued_at: float | None = None  # None for intents queued before the schema had it
    expires_at: float | None = None  # None: never expires
    sent_at: float | None = None  # None: not sent yet (or to be sent again)

    def expired(self, now: float) -> bool:
        """Whether the intent must no longer be sent at ``now`` (epoch seconds)."""
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True)
class DeadLetter:
    """An intent that will never be sent, and why."""

    seq: int
    turn_id: str
    topic: str
    payload: bytes
    reason: str  # EXPIRED, REFUSED or ABANDONED
    reason_code: int | None  # the MQTT 5 PUBACK reason code of a refusal, e.g. 0x87
    detail: str  # e.g. the reason code's name, "Not authorized"
    dead_at: float
    queued_at: float | None
    expires_at: float | None


class Outbox:
    """A SQLite (WAL, synchronous=FULL) FIFO; safe to use from several threads."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        # synchronous=FULL: a queued intent survives a power cut, not only a crash.
        self._db = connect(path, SCHEMA, synchronous="FULL")
        # Reentrant, so a waiter's predicate may call the queue's own methods.
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)

    def put(
        self, turn_id: str, topic: str, payload: bytes, expires_at: float | None = None
    ) -> None:
        """Persist one intent, to be sent until ``expires_at`` (epoch seconds; None: no
        limit); a repeated turn id is kept once."""
        with self.changed:
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO outbox (turn_id, topic, payload, queued_at, expires_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (turn_id, topic, payload, self._clock(), expires_at),
                )
            except sqlite3.Error as exc:
                raise QueueError(f"cannot queue intent {turn_id}: {exc}") from exc
            self.changed.notify_all()

    def head(self, resend_seconds: float | None = None) -> Queued | None:
        """The oldest intent to send: never sent, or (with ``resend_seconds``) sent that
        long ago and still unanswered."""
        due = -1.0 if resend_seconds is None else self._clock() - resend_seconds
        with self._lock:
            row = self._db.execute(
                "SELECT seq, turn_id, topic, payload, queued_at, expires_at, sent_at FROM outbox"
                " WHERE sent_at IS NULL OR sent_at <= ? ORDER BY seq LIMIT 1",
                (due,),
            ).fetchone()
        return None if row is None else Queued(row[0], row[1], row[2], bytes(row[3]), *row[4:])

    def wait_for_head(
        self, timeout_seconds: float, resend_seconds: float | None = None
    ) -> Queued | None:
        """The next intent to send (see :meth:`head`), waiting up to ``timeout_seconds``
        for one to arrive."""
        with self.changed:  # checked and awaited under the lock: no put() slips between
            item = self.head(resend_seconds)
            if item is None:
                self.changed.wait(timeout_seconds)
                item = self.head(resend_seconds)
        return item

    def mark_sent(self, seq: int) -> None:
        """The broker has the intent: keep it, unanswered, until the hub replies."""
        self._write(
            "UPDATE outbox SET sent_at = ? WHERE seq = ?",
            (self._clock(), seq),
            f"cannot mark intent #{seq} sent",
        )

    def resend_all(self) -> int:
        """Mark every sent, unanswered intent to be sent again (a new broker connection:
        the broker may have lost them); how many."""
        return self._write(
            "UPDATE outbox SET sent_at = NULL WHERE sent_at IS NOT NULL",
            (),
            "cannot mark the sent intents for resending",
        )

    def answered(self, turn_id: str) -> bool:
        """The hub replied to ``turn_id``: forget its intent; whether it was queued."""
        return (
            self._write(
                "DELETE FROM outbox WHERE turn_id = ?",
                (turn_id,),
                f"cannot remove the answered intent {turn_id}",
            )
            > 0
        )

    def remove(self, seq: int) -> None:
        """Forget an intent."""
        self._write("DELETE FROM outbox WHERE seq = ?", (seq,), f"cannot remove intent #{seq}")

    def _write(self, sql: str, args: tuple[object, ...], what: str) -> int:
        with self.changed:
            try:
                count = self._db.execute(sql, args).rowcount
            except sqlite3.Error as exc:
                raise QueueError(f"{what}: {exc}") from exc
            self.changed.notify_all()
            return int(count)

    def withdraw(self, turn_id: str, detail: str) -> DeadLetter | None:
        """The person was told ``turn_id`` failed, so its intent must never run later: move
        it to the dead letters (reason ``abandoned``); None if it is no longer queued."""
        with self.changed:  # reentrant: one step as far as other threads can tell
            try:
                found = self._db.execute("SELECT seq FROM outbox WHERE turn_id = ?", (turn_id,))
                row = found.fetchone()
            except sqlite3.Error as exc:
                raise QueueError(f"cannot withdraw intent {turn_id}: {exc}") from exc
            return None if row is None else self.dead_letter(int(row[0]), ABANDONED, detail=detail)

    def unsent_count(self) -> int:
        """How many queued intents the broker does not have yet."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
            return int(row.fetchone()[0])

    def dead_letter(
        self, seq: int, reason: str, *, reason_code: int | None = None, detail: str = ""
    ) -> DeadLetter | None:
        """Move a queued intent to the dead letters in one transaction; None if it is gone."""
        with self.changed:
            try:
                with transaction(self._db):
                    cur = self._db.execute(
                        """INSERT INTO dead_letters (turn_id, topic, payload, queued_at,
                               expires_at, reason, reason_code, detail, dead_at)
                           SELECT turn_id, topic, payload, queued_at, expires_at, ?, ?, ?, ?
                           FROM outbox WHERE seq = ?""",
                        (reason, reason_code, detail, self._clock(), seq),
                    )
                    if cur.rowcount == 0:
                        return None
                    dead_seq = cur.lastrowid
                    self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            except sqlite3.Error as exc:
                raise QueueError(f"cannot move intent #{seq} to the dead letters: {exc}") from exc
            self.changed.notify_all()
            return self._dead_letters(dead_seq)[0]

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        with self._lock:
            return self._dead_letters()

    def _dead_letters(self, seq: int | None = None) -> list[DeadLetter]:
        rows = self._db.execute(
            "SELECT seq, turn_id, topic, payload, reason, reason_code, detail, dead_at,"
            " queued_at, expires_at FROM dead_letters WHERE ? IS NULL OR seq = ? ORDER BY seq",
            (seq, seq),
        ).fetchall()
        return [DeadLetter(r[0], r[1], r[2], bytes(r[3]), *r[4:]) for r in rows]

    def dead_letter_count(self) -> int:
        """How many intents are dead letters (refused or expired)."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

    def expired_count(self) -> int:
        """How many of the dead letters expired before they could be sent."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM dead_letters WHERE reason = ?", (EXPIRED,)
            ).fetchone()
            return int(row[0])

    def wait_for(self, predicate: Callable[[], bool], timeout_seconds: float) -> bool:
        """Wait until ``predicate`` (checked after every change) holds; whether it did."""
        with self.changed:
            return self.changed.wait_for(predicate, timeout_seconds)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        """Checkpoint and close the database."""
        with self.changed:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # e.g. a full disk: the WAL keeps it all
                logger.warning("the intent queue was closed without a checkpoint: %s", exc)
            finally:
                self._db.close()
            self.changed.notify_all()

"""The persistent intent queue: written before publishing, removed only when acknowledged.

An intent that can never be delivered (the broker refused it, or it expired before it
could be sent) is moved to a dead-letter table in the same file, with the reason and
the time; nothing queued is ever deleted without a trace.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from konak.daemon.errors import QueueError

# PRAGMA user_version of the file; 0 is the first release (the outbox table only).
SCHEMA_VERSION: Final = 1
# Dead-letter reasons.
EXPIRED: Final = "expired"
REFUSED: Final = "refused"

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


# _MIGRATIONS[n] takes a file from version n to n + 1.
_MIGRATIONS: Final = (_to_v1,)


@dataclass(frozen=True)
class Queued:
    """One intent waiting for the broker's acknowledgement."""

    seq: int
    turn_id: str
    topic: str
    payload: bytes
    queued_at: float | None = None  # None for intents queued before the schema had it
    expires_at: float | None = None  # None: never expires

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
    reason: str  # EXPIRED or REFUSED
    reason_code: int | None  # the MQTT 5 PUBACK reason code of a refusal, e.g. 0x87
    detail: str  # e.g. the reason code's name, "Not authorized"
    dead_at: float
    queued_at: float | None
    expires_at: float | None


class Outbox:
    """A SQLite (WAL, synchronous=FULL) FIFO; safe to use from several threads."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise QueueError(f"cannot open the intent queue {path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate(path)
        except sqlite3.Error as exc:
            self._db.close()
            raise QueueError(f"cannot open the intent queue {path}: {exc}") from exc
        except QueueError:
            self._db.close()
            raise
        # Reentrant, so a waiter's predicate may call the queue's own methods.
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)

    def _migrate(self, path: Path) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise QueueError(
                f"the intent queue {path} has schema version {version}, newer than this "
                f"daemon's {SCHEMA_VERSION}"
            )
        for step in range(version, SCHEMA_VERSION):
            with self._transaction():
                _MIGRATIONS[step](self._db)
                self._db.execute(f"PRAGMA user_version = {step + 1}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

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

    def head(self) -> Queued | None:
        """The oldest queued intent."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq, turn_id, topic, payload, queued_at, expires_at FROM outbox"
                " ORDER BY seq LIMIT 1"
            ).fetchone()
        return None if row is None else Queued(row[0], row[1], row[2], bytes(row[3]), *row[4:])

    def wait_for_head(self, timeout_seconds: float) -> Queued | None:
        """The oldest intent, waiting up to ``timeout_seconds`` for one to arrive."""
        with self.changed:  # checked and awaited under the lock: no put() slips between
            item = self.head()
            if item is None:
                self.changed.wait(timeout_seconds)
                item = self.head()
        return item

    def remove(self, seq: int) -> None:
        """Forget an acknowledged intent."""
        with self.changed:
            try:
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            except sqlite3.Error as exc:
                raise QueueError(f"cannot remove intent #{seq} from the queue: {exc}") from exc
            self.changed.notify_all()

    def dead_letter(
        self, seq: int, reason: str, *, reason_code: int | None = None, detail: str = ""
    ) -> DeadLetter | None:
        """Move a queued intent to the dead letters in one transaction; None if it is gone."""
        with self.changed:
            try:
                with self._transaction():
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
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self.changed.notify_all()

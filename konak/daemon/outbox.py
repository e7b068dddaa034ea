"""The persistent intent queue: written before publishing, removed only when acknowledged."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from konak.daemon.errors import QueueError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    turn_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
)
"""


@dataclass(frozen=True)
class Queued:
    """One intent waiting for the broker's acknowledgement."""

    seq: int
    turn_id: str
    topic: str
    payload: bytes


class Outbox:
    """A SQLite (WAL, synchronous=FULL) FIFO; safe to use from several threads."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise QueueError(f"cannot open the intent queue {path}: {exc}") from exc
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)

    def put(self, turn_id: str, topic: str, payload: bytes) -> None:
        """Persist one intent (a repeated turn id is kept once)."""
        with self.changed:
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO outbox (turn_id, topic, payload) VALUES (?, ?, ?)",
                    (turn_id, topic, payload),
                )
            except sqlite3.Error as exc:
                raise QueueError(f"cannot queue intent {turn_id}: {exc}") from exc
            self.changed.notify_all()

    def head(self) -> Queued | None:
        """The oldest queued intent."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq, turn_id, topic, payload FROM outbox ORDER BY seq LIMIT 1"
            ).fetchone()
        return None if row is None else Queued(row[0], row[1], row[2], bytes(row[3]))

    def wait_for_head(self, timeout_seconds: float) -> Queued | None:
        """The oldest intent, waiting up to ``timeout_seconds`` for one to arrive."""
        item = self.head()
        if item is None:
            with self.changed:
                self.changed.wait(timeout_seconds)
            item = self.head()
        return item

    def remove(self, seq: int) -> None:
        """Forget an acknowledged intent."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        """Checkpoint and close the database."""
        with self.changed:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self.changed.notify_all()

"""The hub's SQLite store (WAL): devices, telemetry and processed turns, all tenant-scoped.

Every table has ``tenant_id`` and every query filters by it; a caller cannot ask for
another tenant's rows without naming that tenant.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from konak.hub import database
from konak.protocol import Status, Telemetry
from konak.storage.sqlite import transaction

logger = logging.getLogger(__name__)


# claimed: running; answering: finished, its reply not yet confirmed by the broker; done.
TurnState = Literal["claimed", "answering", "done", "abandoned"]


@dataclass(frozen=True, slots=True)
class Device:
    """One device as the registry knows it."""

    tenant_id: str
    device_id: str
    state: str
    last_seen: float
    state_since: float
    name: str | None = None
    area: str | None = None
    language: str | None = None
    error: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    alerted: bool = False

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {
            "device": self.device_id,
            "tenant": self.tenant_id,
            "state": self.state,
            "name": self.name,
            "area": self.area,
            "language": self.language,
            "error": self.error,
            "versions": self.versions,
            "models": self.models,
            "capabilities": self.capabilities,
            "last_seen": self.last_seen,
            "state_since": self.state_since,
        }


@dataclass(frozen=True, slots=True)
class Turn:
    """A turn the hub has seen."""

    tenant_id: str
    turn_id: str
    device_id: str
    state: TurnState
    outcome: str | None
    reply_text: str | None


class Store:
    """Synchronous access to the hub database (its schema: ``konak.hub.database``); used
    from the event loop (calls are short)."""

    def __init__(self, path: Path) -> None:
        self._db = database.connect(path)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # -- devices -------------------------------------------------------------------
    def upsert_status(self, status: Status, now: float) -> tuple[Device | None, Device]:
        """Record a status message; returns the device before (None if new) and after."""
        before = self.device(status.tenant, status.device)
        since = now if before is None or before.state != status.state else before.state_since
        self._db.execute(
            """INSERT INTO devices (tenant_id, device_id, name, area, language, versions,
                   models, capabilities, state, error, last_seen, state_since, alerted)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
               ON CONFLICT (tenant_id, device_id) DO UPDATE SET
                   name = coalesce(excluded.name, name),
                   area = coalesce(excluded.area, area),
                   language = coalesce(excluded.language, language),
                   versions = CASE WHEN excluded.versions = '{}' THEN versions
                                   ELSE excluded.versions END,
                   models = CASE WHEN excluded.models = '[]' THEN models
                                 ELSE excluded.models END,
                   capabilities = CASE WHEN excluded.capabilities = '[]' THEN capabilities
                                       ELSE excluded.capabilities END,
                   state = excluded.state, error = excluded.error,
                   last_seen = excluded.last_seen, state_since = excluded.state_since,
                   alerted = CASE WHEN excluded.state = state THEN alerted ELSE 0 END""",
            (
                status.tenant,
                status.device,
                status.name,
                status.area,
                status.language,
                json.dumps(status.versions),
                json.dumps(status.models),
                json.dumps(status.capabilities),
                status.state,
                status.error,
                now,
                since,
            ),
        )
        after = self.device(status.tenant, status.device)
        assert after is not None
        return before, after

    def touch(self, tenant_id: str, device_id: str, now: float) -> None:
        """Note that a device was heard from (any message)."""
        self._db.execute(
            "UPDATE devices SET last_seen = ? WHERE tenant_id = ? AND device_id = ?",
            (now, tenant_id, device_id),
        )

    def device(self, tenant_id: str, device_id: str) -> Device | None:
        """One device of a tenant, or None."""
        row = self._db.execute(
            "SELECT * FROM devices WHERE tenant_id = ? AND device_id = ?", (tenant_id, device_id)
        ).fetchone()
        return _device(row) if row is not None else None

    def devices(self, tenant_id: str, *, area: str | None = None) -> list[Device]:
        """The devices of a tenant (optionally of one area), by id."""
        if area is None:
            rows = self._db.execute(
                "SELECT * FROM devices WHERE tenant_id = ? ORDER BY device_id", (tenant_id,)
            )
        else:
            rows = self._db.execute(
                "SELECT * FROM devices WHERE tenant_id = ? AND area = ? ORDER BY device_id",
                (tenant_id, area),
            )
        return [_device(row) for row in rows]

    def tenants_with_devices(self) -> list[str]:
        """Tenant ids that have at least one device (for the fleet monitor's sweep)."""
        return [r[0] for r in self._db.execute("SELECT DISTINCT tenant_id FROM devices")]

    def mark_alerted(self, tenant_id: str, device_id: str) -> None:
        """Remember that the current state's alert was sent."""
        self._db.execute(
            "UPDATE devices SET alerted = 1 WHERE tenant_id = ? AND device_id = ?",
            (tenant_id, device_id),
        )

    def count_online(self) -> dict[str, int]:
        """Online devices per tenant."""
        rows = self._db.execute(
            "SELECT tenant_id, count(*) FROM devices WHERE state = 'online' GROUP BY tenant_id"
        )
        return {r[0]: int(r[1]) for r in rows}

    # -- telemetry -----------------------------------------------------------------
    def add_telemetry(
        self, telemetry: Telemetry, now: float, *, retention_seconds: float, max_rows: int
    ) -> None:
        """Store one telemetry sample and trim the device's history to its bounds."""
        body = telemetry.model_dump_json(exclude={"v", "type", "tenant", "device"})
        t, d = telemetry.tenant, telemetry.device
        self._db.execute(
            "INSERT INTO telemetry (tenant_id, device_id, received_at, body) VALUES (?, ?, ?, ?)",
            (t, d, now, body),
        )
        self._db.execute(
            "DELETE FROM telemetry WHERE tenant_id = ? AND device_id = ? AND received_at < ?",
            (t, d, now - retention_seconds),
        )
        self._db.execute(
            """DELETE FROM telemetry WHERE tenant_id = ? AND device_id = ? AND rowid NOT IN (
                   SELECT rowid FROM telemetry WHERE tenant_id = ? AND device_id = ?
                   ORDER BY received_at DESC, rowid DESC LIMIT ?)""",
            (t, d, t, d, max_rows),
        )

    def telemetry(self, tenant_id: str, device_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest telemetry samples of a device, newest first."""
        rows = self._db.execute(
            """SELECT received_at, body FROM telemetry WHERE tenant_id = ? AND device_id = ?
               ORDER BY received_at DESC, rowid DESC LIMIT ?""",
            (tenant_id, device_id, limit),
        )
        return [{"received_at": r[0], **json.loads(r[1])} for r in rows]

    # -- turns ---------------------------------------------------------------------
    def claim_turn(
        self, tenant_id: str, turn_id: str, device_id: str, expires_at: float | None = None
    ) -> Turn | None:
        """Claim a turn for processing; returns None when claimed now, else the earlier turn.
        ``expires_at`` is the intent's: after it, its device no longer waits for the reply."""
        cur = self._db.execute(
            """INSERT INTO turns (tenant_id, turn_id, device_id, state, created_at, expires_at)
               VALUES (?, ?, ?, 'claimed', ?, ?) ON CONFLICT DO NOTHING""",
            (tenant_id, turn_id, device_id, time.time(), expires_at),
        )
        if cur.rowcount == 1:
            return None
        row = self._db.execute(
            "SELECT * FROM turns WHERE tenant_id = ? AND turn_id = ?", (tenant_id, turn_id)
        ).fetchone()
        return Turn(
            row["tenant_id"],
            row["turn_id"],
            row["device_id"],
            row["state"],
            row["outcome"],
            row["reply_text"],
        )

    def unanswered_turns(
        self, outcome: str, reply_text: str, now: float | None = None
    ) -> list[Turn]:
        """The turns of every tenant whose reply was never confirmed and whose device still
        waits for it (not past the intent's expiry), oldest first; those still claimed
        (never finished: a crash left them) become ``outcome`` first. A turn past its expiry
        becomes 'abandoned': its device gave up on it and told the person so, and a reply
        now would be dropped on arrival. Each Turn carries the state it had before."""
        now = time.time() if now is None else now
        with transaction(self._db):  # no turn is failed and then missed
            self._db.execute(
                "UPDATE turns SET state = 'abandoned', outcome = coalesce(outcome, ?), "
                "reply_text = coalesce(reply_text, ?) "
                "WHERE state IN ('claimed', 'answering') AND expires_at < ?",
                (outcome, reply_text, now),
            )
            rows = self._db.execute(
                "SELECT * FROM turns WHERE state IN ('claimed', 'answering') ORDER BY created_at"
            ).fetchall()
            self._db.execute(
                "UPDATE turns SET state = 'answering', outcome = ?, reply_text = ? "
                "WHERE state = 'claimed'",
                (outcome, reply_text),
            )
        return [
            Turn(
                r["tenant_id"],
                r["turn_id"],
                r["device_id"],
                r["state"],
                r["outcome"] if r["state"] == "answering" else outcome,
                r["reply_text"] if r["state"] == "answering" else reply_text,
            )
            for r in rows
        ]

    def replied(self, tenant_id: str, turn_id: str) -> None:
        """Note that the broker has the reply of a finished turn."""
        self._db.execute(
            "UPDATE turns SET state = 'done' WHERE tenant_id = ? AND turn_id = ?",
            (tenant_id, turn_id),
        )

    def finish_turn(self, tenant_id: str, turn_id: str, outcome: str, reply_text: str) -> None:
        """Record the outcome and reply of a claimed turn (its reply is yet to be sent)."""
        self._db.execute(
            """UPDATE turns SET state = 'answering', outcome = ?, reply_text = ?
               WHERE tenant_id = ? AND turn_id = ?""",
            (outcome, reply_text, tenant_id, turn_id),
        )


def _device(row: sqlite3.Row) -> Device:
    return Device(
        tenant_id=row["tenant_id"],
        device_id=row["device_id"],
        state=row["state"],
        last_seen=row["last_seen"],
        state_since=row["state_since"],
        name=row["name"],
        area=row["area"],
        language=row["language"],
        error=row["error"],
        versions=json.loads(row["versions"]),
        models=json.loads(row["models"]),
        capabilities=json.loads(row["capabilities"]),
        alerted=bool(row["alerted"]),
    )

"""Alerts kept for the console's notification centre, each user's read state with them.

The fleet monitor raises them (a device offline or in error, an MCP server's circuit
opening, a tenant's quota reached: the same alerts as the webhook) and this log keeps the
newest ``MAX_ALERTS_PER_TENANT`` of each tenant. Read state is per user: a watermark for
"mark all read" and the alerts read one by one above it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Final, Literal

from konak.storage.sqlite import transaction

AlertKind = Literal["device_offline", "device_error", "mcp_circuit_open", "quota_reached"]
MAX_ALERTS_PER_TENANT: Final = 10_000

# An alert is read by a user when at or below their watermark, or read one by one.
_READ: Final = """(a.id <= coalesce((SELECT read_up_to FROM alert_read_marks m
        WHERE m.tenant_id = a.tenant_id AND m.user_id = :user), 0)
    OR EXISTS (SELECT 1 FROM alert_reads r WHERE r.tenant_id = a.tenant_id
        AND r.user_id = :user AND r.alert_id = a.id))"""


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert of a tenant."""

    id: int
    tenant_id: str
    kind: AlertKind
    device_id: str | None
    detail: str
    at: float

    def as_dict(self, *, read: bool = False) -> dict[str, Any]:
        """The JSON view (the console's AlertView) for a user who has or has not read it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "device": self.device_id,
            "detail": self.detail,
            "at": self.at,
            "read": read,
        }


class AlertLog:
    """The kept alerts, on a connection to the hub database (``konak.hub.database``)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def add(
        self, tenant_id: str, kind: AlertKind, device_id: str | None, detail: str, at: float
    ) -> Alert:
        """Keep a new alert (dropping the tenant's oldest beyond the bound)."""
        with transaction(self._db):
            cur = self._db.execute(
                """INSERT INTO alerts (tenant_id, kind, device_id, detail, at)
                   VALUES (?, ?, ?, ?, ?)""",
                (tenant_id, kind, device_id, detail, at),
            )
            alert_id = cur.lastrowid
            assert alert_id is not None
            oldest = self._db.execute(
                "SELECT id FROM alerts WHERE tenant_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                (tenant_id, MAX_ALERTS_PER_TENANT),
            ).fetchone()
            if oldest is not None:  # ids only grow: everything at or below it is older
                for table, column in (("alerts", "id"), ("alert_reads", "alert_id")):
                    self._db.execute(
                        f"DELETE FROM {table} WHERE tenant_id = ? AND {column} <= ?",  # noqa: S608
                        (tenant_id, oldest[0]),
                    )
        return Alert(alert_id, tenant_id, kind, device_id, detail, at)

    def page(
        self,
        tenant_id: str,
        user_id: str,
        *,
        unread_only: bool = False,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[tuple[Alert, bool]]:
        """The tenant's alerts, newest first, each with whether ``user_id`` has read it."""
        rows = self._db.execute(
            f"""SELECT a.*, {_READ} AS read FROM alerts a
                WHERE a.tenant_id = :tenant AND a.id < :before
                AND (NOT :unread_only OR NOT {_READ})
                ORDER BY a.id DESC LIMIT :limit""",  # noqa: S608 (a fixed clause)
            {
                "tenant": tenant_id,
                "user": user_id,
                "before": before_id if before_id is not None else 2**63 - 1,
                "unread_only": unread_only,
                "limit": limit,
            },
        )
        return [
            (
                Alert(r["id"], r["tenant_id"], r["kind"], r["device_id"], r["detail"], r["at"]),
                bool(r["read"]),
            )
            for r in rows
        ]

    def unread(self, tenant_id: str, user_id: str) -> int:
        """How many of the tenant's alerts ``user_id`` has not read."""
        row = self._db.execute(
            f"SELECT count(*) FROM alerts a WHERE a.tenant_id = :tenant AND NOT {_READ}",  # noqa: S608
            {"tenant": tenant_id, "user": user_id},
        ).fetchone()
        return int(row[0])

    def mark_read(self, tenant_id: str, user_id: str, alert_id: int) -> bool:
        """Mark one alert read for a user; False when the tenant has no such alert."""
        with transaction(self._db):
            found = self._db.execute(
                "SELECT 1 FROM alerts WHERE tenant_id = ? AND id = ?", (tenant_id, alert_id)
            ).fetchone()
            if found is None:
                return False
            self._db.execute(
                "INSERT OR IGNORE INTO alert_reads (tenant_id, user_id, alert_id) VALUES (?, ?, ?)",
                (tenant_id, user_id, alert_id),
            )
        return True

    def mark_all_read(self, tenant_id: str, user_id: str) -> None:
        """Mark every alert of the tenant read for a user (those raised later stay unread)."""
        with transaction(self._db):
            newest = self._db.execute(
                "SELECT max(id) FROM alerts WHERE tenant_id = ?", (tenant_id,)
            ).fetchone()[0]
            if newest is None:
                return
            self._db.execute(
                """INSERT INTO alert_read_marks (tenant_id, user_id, read_up_to) VALUES (?, ?, ?)
                   ON CONFLICT (tenant_id, user_id) DO UPDATE SET
                       read_up_to = max(read_up_to, excluded.read_up_to)""",
                (tenant_id, user_id, newest),
            )
            self._db.execute(
                "DELETE FROM alert_reads WHERE tenant_id = ? AND user_id = ? AND alert_id <= ?",
                (tenant_id, user_id, newest),
            )

"""The append-only audit log: who did what, in which tenant, to what, from where, and how
it ended. SQLite triggers refuse UPDATE and DELETE on the table.

A request that proved no identity (anonymous, refused) is never written under the tenant
its URL names, only under the platform, and only within a cap: a flood of such requests
adds a bounded number of rows, the rest are counted."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any, Final

from konak.hub.security.ratelimit import Clock, TokenBuckets
from konak.hub.security.settings import RateLimit

logger = logging.getLogger(__name__)

PLATFORM_TENANT: Final = ""  # platform events (tenant creation, failed logins of unknown users)
MAX_PAGE: Final = 500
EXPORT_PAGE: Final = 500  # rows read per query while an export streams
# Records of requests that proved nothing: 100 at once, then one every 2 s at most.
UNPROVEN_LIMIT: Final = RateLimit(burst=100, per_second=0.5)
SQLITE_INTEGER_MAX: Final = 2**63 - 1  # a larger bound parameter raises OverflowError


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit record."""

    id: int
    at: float
    tenant_id: str
    actor: str
    action: str
    target: str
    ip: str
    outcome: str
    status: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters over one tenant's log; ``before_id`` pages backwards from the newest."""

    tenant_id: str
    actor: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: float | None = None
    until: float | None = None
    before_id: int | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        for name in ("before_id", "limit"):
            value = getattr(self, name)
            if value is not None and abs(value) > SQLITE_INTEGER_MAX:
                raise ValueError(f"{name} out of range: {value}")


class AuditLog:
    """Appends and reads audit records."""

    def __init__(
        self,
        db: sqlite3.Connection,
        unproven_limit: RateLimit = UNPROVEN_LIMIT,
        clock: Clock = time.monotonic,
    ) -> None:
        self._db = db
        self._unproven = TokenBuckets(unproven_limit, clock)
        self._suppressed = 0  # unproven records not written since the cap was reached

    def record_unproven(
        self, *, actor: str, action: str, target: str, ip: str, outcome: str, status: int
    ) -> bool:
        """Append a record of a request that proved no identity under the platform (never a
        tenant), within the cap; False (and nothing written) when over it."""
        if self._unproven.take(PLATFORM_TENANT):
            if self._suppressed == 0:
                logger.warning("audit: too many anonymous or refused requests; counting them")
            self._suppressed += 1
            return False
        if self._suppressed:
            logger.warning("audit: %d anonymous or refused requests not written", self._suppressed)
            self._suppressed = 0
        self.record(
            tenant_id=PLATFORM_TENANT,
            actor=actor,
            action=action,
            target=target,
            ip=ip,
            outcome=outcome,
            status=status,
        )
        return True

    def record(
        self,
        *,
        tenant_id: str,
        actor: str,
        action: str,
        target: str,
        ip: str,
        outcome: str,
        status: int,
    ) -> None:
        """Append one record."""
        self._db.execute(
            """INSERT INTO audit_log (at, tenant_id, actor, action, target, ip, outcome, status)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            (time.time(), tenant_id, actor, action, target, ip, outcome, status),
        )

    def _select(self, query: AuditQuery) -> tuple[str, list[Any]]:
        sql = "SELECT * FROM audit_log WHERE tenant_id = ?"
        params: list[Any] = [query.tenant_id]
        for column in ("actor", "action", "outcome"):
            value = getattr(query, column)
            if value is not None:
                sql += f" AND {column} = ?"  # column names are fixed above, values bound
                params.append(value)
        if query.since is not None:
            sql += " AND at >= ?"
            params.append(query.since)
        if query.until is not None:
            sql += " AND at < ?"
            params.append(query.until)
        if query.before_id is not None:
            sql += " AND id < ?"
            params.append(query.before_id)
        return sql + " ORDER BY id DESC", params

    def page(self, query: AuditQuery) -> tuple[list[AuditEntry], int | None]:
        """The newest matching records (at most ``limit``) and the cursor of the next page."""
        limit = max(1, min(query.limit, MAX_PAGE))
        sql, params = self._select(query)
        rows = self._db.execute(sql + " LIMIT ?", [*params, limit + 1]).fetchall()
        entries = [_entry(r) for r in rows[:limit]]
        return entries, (entries[-1].id if len(rows) > limit else None)

    def export(self, query: AuditQuery) -> Iterator[str]:
        """Every matching record as JSON lines, newest first, read ``EXPORT_PAGE`` rows per
        query (keyset paging: no cursor stays open, and rows written meanwhile have higher
        ids, so the export is the log as it was when it started)."""
        page = replace(query, limit=EXPORT_PAGE)
        while True:
            entries, cursor = self.page(page)
            for entry in entries:
                yield json.dumps(entry.as_dict()) + "\n"
            if cursor is None:
                return
            page = replace(page, before_id=cursor)


def _entry(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        tenant_id=row["tenant_id"],
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        ip=row["ip"],
        outcome=row["outcome"],
        status=row["status"],
    )

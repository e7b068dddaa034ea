"""MCP servers a tenant admin adds through the API, kept in the hub database and merged with
the ones from hub.toml before they reach the MCP host.

Only Streamable HTTP servers can be added this way: a stdio server is a command the hub
would run, which is the platform operator's decision (hub.toml), not a tenant's. Header
values are secrets: they are stored, sent to the server, and never returned or logged. Every
server added here is reached under the outbound address policy (``konak.hub.outbound``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from konak.hub.errors import ConfigError, HubError
from konak.hub.outbound import OutboundPolicy
from konak.hub.settings import McpServerSettings, TenantSettings

logger = logging.getLogger(__name__)

REDACTED: Final = "********"


class McpRegistryError(HubError):
    """A server cannot be stored as given (the API maps the code to its status)."""


@dataclass(frozen=True, slots=True)
class StoredServer:
    """One tenant-added MCP server (header values are secrets)."""

    tenant_id: str
    name: str
    url: str
    headers: Mapping[str, str]
    timeout_seconds: float
    read_only_tools: tuple[str, ...]
    updated_at: float

    def settings(self, outbound: OutboundPolicy | None = None) -> McpServerSettings:
        """The MCP host's view of this server, under ``outbound`` (default: no allow-list)."""
        return McpServerSettings(
            name=self.name,
            url=self.url,
            headers=dict(self.headers),
            timeout_seconds=self.timeout_seconds,
            read_only_tools=self.read_only_tools,
            outbound=outbound or OutboundPolicy(),
        )

    def public(self) -> dict[str, Any]:
        """What the API shows: header names only, their values redacted."""
        return {
            "name": self.name,
            "transport": "http",
            "url": self.url,
            "headers": dict.fromkeys(sorted(self.headers), REDACTED),
            "timeout_seconds": self.timeout_seconds,
            "read_only_tools": list(self.read_only_tools),
            "updated_at": self.updated_at,
            "source": "api",
        }


def _row(row: sqlite3.Row) -> StoredServer:
    return StoredServer(
        tenant_id=row["tenant_id"],
        name=row["name"],
        url=row["url"],
        headers=json.loads(row["headers"]),
        timeout_seconds=row["timeout_seconds"],
        read_only_tools=tuple(json.loads(row["read_only_tools"])),
        updated_at=row["updated_at"],
    )


class McpRegistry:
    """The tenant-added servers. ``on_change`` re-applies the MCP host's configuration;
    ``outbound`` says where these servers may be (the hub passes [mcp] allow_hosts and its
    own ports; by default public addresses only)."""

    def __init__(
        self,
        db: sqlite3.Connection,
        *,
        on_change: Callable[[], Awaitable[None]] | None = None,
        outbound: Callable[[], OutboundPolicy] = OutboundPolicy,
    ) -> None:
        self._db = db  # the hub database: its schema (this table's too) is konak.hub.database's
        self.on_change = on_change
        self.outbound = outbound
        self.lock = asyncio.Lock()

    def of_tenant(self, tenant_id: str) -> list[StoredServer]:
        """One tenant's servers by name."""
        rows = self._db.execute(
            "SELECT * FROM tenant_mcp_servers WHERE tenant_id = ? ORDER BY name", (tenant_id,)
        )
        return [_row(r) for r in rows]

    def get(self, tenant_id: str, name: str) -> StoredServer | None:
        """One server of a tenant, or None."""
        row = self._db.execute(
            "SELECT * FROM tenant_mcp_servers WHERE tenant_id = ? AND name = ?",
            (tenant_id, name),
        ).fetchone()
        return None if row is None else _row(row)

    def all(self) -> dict[str, list[StoredServer]]:
        """Every tenant's servers (for the MCP host)."""
        found: dict[str, list[StoredServer]] = {}
        for row in self._db.execute("SELECT * FROM tenant_mcp_servers ORDER BY tenant_id, name"):
            server = _row(row)
            found.setdefault(server.tenant_id, []).append(server)
        return found

    def put(self, server: StoredServer, *, create: bool) -> None:
        """Insert (``create``) or replace a server; McpRegistryError when it exists/does not."""
        try:
            server.settings()  # the host's own validation (URL scheme and host, timeout)
        except ConfigError as exc:
            raise McpRegistryError(exc.message, code="invalid_server") from exc
        values = (
            server.url,
            json.dumps(dict(server.headers)),
            server.timeout_seconds,
            json.dumps(list(server.read_only_tools)),
            server.updated_at,
            server.tenant_id,
            server.name,
        )
        if create:
            try:
                self._db.execute(
                    "INSERT INTO tenant_mcp_servers (url, headers, timeout_seconds,"
                    " read_only_tools, updated_at, tenant_id, name) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
            except sqlite3.IntegrityError as exc:
                raise McpRegistryError(
                    f"mcp server {server.name!r} exists", code="conflict"
                ) from exc
            return
        cursor = self._db.execute(
            "UPDATE tenant_mcp_servers SET url = ?, headers = ?, timeout_seconds = ?,"
            " read_only_tools = ?, updated_at = ? WHERE tenant_id = ? AND name = ?",
            values,
        )
        if cursor.rowcount == 0:
            raise McpRegistryError(f"no mcp server {server.name!r}", code="not_found")

    def delete(self, tenant_id: str, name: str) -> bool:
        """Remove a server; False when there was none."""
        cursor = self._db.execute(
            "DELETE FROM tenant_mcp_servers WHERE tenant_id = ? AND name = ?", (tenant_id, name)
        )
        return cursor.rowcount > 0

    async def changed(self) -> None:
        """Apply the stored servers to the running MCP host (no restart)."""
        if self.on_change is not None:
            await self.on_change()

    def merged(self, tenants: Mapping[str, TenantSettings]) -> dict[str, TenantSettings]:
        """hub.toml's tenants with their API-added servers appended (hub.toml wins a name)."""
        merged = dict(tenants)
        outbound = self.outbound()
        for tenant_id, servers in self.all().items():
            base = merged.get(tenant_id) or TenantSettings(tenant_id)
            taken = {s.name for s in base.mcp_servers}
            extra = tuple(s.settings(outbound) for s in servers if s.name not in taken)
            merged[tenant_id] = replace(base, mcp_servers=base.mcp_servers + extra)
        return merged


def now() -> float:
    """Wall-clock time of a change."""
    return time.time()

"""The hub's aiohttp app factory: each resource is a cleanup context, state behind AppKeys."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from aiohttp import ClientSession, web

from konak.hub.arbitration import Arbiter
from konak.hub.auth.http import AUTH
from konak.hub.auth.rbac import Action, declare
from konak.hub.auth.routes import setup_auth
from konak.hub.fleet import FleetMonitor
from konak.hub.ingest import Ingest
from konak.hub.mcp_host import McpHost
from konak.hub.mcp_registry import McpRegistry
from konak.hub.metrics import HubMetrics
from konak.hub.quotas import Quotas
from konak.hub.settings import HubSettings, TenantSettings
from konak.hub.store import Store
from konak.hub.turns import TurnProcessor
from konak.protocol import Cmd, Reply

logger = logging.getLogger(__name__)


@dataclass
class Hub:
    """The running hub's parts (what tests and the CLI reach through ``HUB``)."""

    settings: HubSettings
    metrics: HubMetrics = field(default_factory=HubMetrics)
    store: Store | None = None
    mcp: McpHost | None = None
    ingest: Ingest | None = None
    fleet: FleetMonitor | None = None
    turns: TurnProcessor | None = None
    fleet_mcp_port: int | None = None
    mcp_registry: McpRegistry | None = None

    def tenants(self) -> Mapping[str, TenantSettings]:
        """The tenants of the current settings."""
        return self.settings.tenants

    def fleet_tokens(self) -> dict[str, str]:
        """konak-fleet token hashes -> tenant id."""
        return {
            t.fleet_token_sha256: tid
            for tid, t in self.settings.tenants.items()
            if t.fleet_token_sha256 is not None
        }

    async def reconfigure(self, settings: HubSettings) -> None:
        """Apply new tenant settings (MCP servers, bindings, tokens) without a restart."""
        self.settings = settings
        await self.apply_mcp()

    def mcp_tenants(self) -> Mapping[str, TenantSettings]:
        """hub.toml's tenants with the MCP servers their admins added through the API."""
        if self.mcp_registry is None:
            return self.settings.tenants
        return self.mcp_registry.merged(self.settings.tenants)

    async def apply_mcp(self) -> None:
        """Connect, reconnect and drop MCP servers to match the configuration (no restart)."""
        if self.mcp is not None:
            await self.mcp.configure(self.mcp_tenants())

    def mcp_status(self, tenant_id: str, server: str) -> tuple[bool, list[str]] | None:
        """Whether a server of a tenant is connected, and its tools."""
        conn = self.mcp.connection(tenant_id, server) if self.mcp is not None else None
        if conn is None:
            return None
        return conn.ready.is_set(), sorted(conn.tools)


HUB = web.AppKey("hub", Hub)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    hub.store = Store(hub.settings.database_path)
    yield
    hub.store.close()


async def _mcp_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    hub.mcp = McpHost(hub.metrics)
    await hub.mcp.configure(hub.mcp_tenants())
    yield
    await hub.mcp.close()


async def _voice_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    assert hub.store is not None
    assert hub.mcp is not None
    async with ClientSession() as http:
        hub.fleet = FleetMonitor(hub.store, hub.settings.fleet, hub.metrics, http)
        hub.fleet.refresh_gauge()

        async def publish(reply: Reply) -> None:
            assert hub.ingest is not None
            await hub.ingest.publish(reply)

        hub.turns = TurnProcessor(
            hub.store,
            hub.mcp,
            Arbiter(hub.settings.arbitration_window_seconds),
            hub.metrics,
            publish,
            hub.tenants,
            Quotas(lambda: hub.settings.quotas, hub.metrics),
        )
        hub.ingest = Ingest(
            hub.settings.mqtt,
            hub.metrics,
            on_status=hub.fleet.on_status,
            on_telemetry=hub.fleet.on_telemetry,
            on_intent=hub.turns.handle,
            on_seen=hub.fleet.on_seen,
        )
        tasks = [
            asyncio.create_task(hub.ingest.run(), name="ingest"),
            asyncio.create_task(hub.fleet.run(), name="fleet-monitor"),
        ]
        yield
        await hub.ingest.close()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await hub.fleet.close()


async def _fleet_mcp_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    if not hub.settings.fleet_mcp.enabled:
        yield
        return
    from konak.hub.mcp_servers.fleet import build_fleet_server, serve_fleet

    assert hub.store is not None
    assert hub.ingest is not None
    ingest = hub.ingest

    async def publish(cmd: Cmd) -> None:
        await ingest.publish(cmd)

    server = build_fleet_server(hub.store, publish, hub.fleet_tokens)
    async with serve_fleet(hub.settings.fleet_mcp, server, hub.fleet_tokens) as port:
        hub.fleet_mcp_port = port
        yield


@declare(Action.PUBLIC)
async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus exposition of this hub's metrics."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    hub = request.app[HUB]
    if hub.fleet is not None:
        hub.fleet.refresh_gauge()
    body = generate_latest(hub.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@declare(Action.PUBLIC)
async def health_view(request: web.Request) -> web.Response:
    """Liveness and whether the broker link is up."""
    hub = request.app[HUB]
    mqtt_up = hub.ingest is not None and hub.ingest.connected.is_set()
    return web.json_response({"ok": True, "mqtt": mqtt_up}, status=200 if mqtt_up else 503)


def create_app(settings: HubSettings, hub: Hub | None = None) -> web.Application:
    """The hub as an aiohttp application."""
    app = web.Application()
    app[HUB] = hub or Hub(settings)
    app.cleanup_ctx.extend([_store_ctx, _mcp_ctx, _voice_ctx, _fleet_mcp_ctx])
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", health_view)
    hub = app[HUB]
    setup_auth(app, hub.settings)
    if AUTH in app:
        state = app[AUTH]
        hub.mcp_registry = state.mcp_registry
        if hub.mcp_registry is not None:
            hub.mcp_registry.on_change = hub.apply_mcp
        state.mcp_status = hub.mcp_status
        state.configured_mcp = lambda tenant: (
            t.mcp_servers if (t := hub.settings.tenants.get(tenant)) else ()
        )
    return app

"""The hub's aiohttp app factory: each resource is a cleanup context, state behind AppKeys."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Final

from aiohttp import ClientSession, web

from konak.hub.arbitration import Arbiter
from konak.hub.auth.devices import enrolled_check
from konak.hub.auth.errors import Forbidden, Unauthenticated
from konak.hub.auth.http import AUTH
from konak.hub.auth.rbac import Action, declare
from konak.hub.auth.routes import setup_auth
from konak.hub.auth.settings import AuthSettings
from konak.hub.auth.tokens import Tokens
from konak.hub.errors import ConfigError, PublishError
from konak.hub.fleet import FleetMonitor
from konak.hub.ingest import PUBLISH_WAIT_SECONDS, Ingest
from konak.hub.mcp_host import McpHost
from konak.hub.mcp_registry import McpRegistry
from konak.hub.metrics import HubMetrics
from konak.hub.outbound import OutboundPolicy
from konak.hub.quotas import Quotas
from konak.hub.settings import HubSettings, TenantSettings
from konak.hub.store import Store, Turn
from konak.hub.turns import TurnProcessor
from konak.protocol import Cmd, Reply

logger = logging.getLogger(__name__)

SERVER_HEADER: Final = "konak-hub"  # no versions: they only help an attacker pick exploits
# What a SIGHUP can change in a running hub; any other difference needs a restart.
RELOADABLE: Final = frozenset({"tenants", "quotas", "http", "auth", "mcp"})
RELOADABLE_AUTH: Final = frozenset(
    {"keys", "active_kid", "issuer", "access_token_seconds", "refresh_token_seconds"}
)
_SECTIONS: Final = {
    "database_path": "[hub] database_path",
    "http_host": "[hub] http_host",
    "http_port": "[hub] http_port",
    "log_level": "[hub] log_level",
    "log_file": "[hub] log_file",
    "stop_grace_seconds": "[hub] stop_grace_seconds",
    "arbitration_window_seconds": "[arbitration] window_seconds",
}


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

    def outbound_policy(self) -> OutboundPolicy:
        """Where servers tenants add may be: public addresses and [mcp] allow_hosts, never
        this hub's own ports."""
        s = self.settings
        ports = (s.http_port, s.fleet_mcp.port, self.fleet_mcp_port or 0)
        return OutboundPolicy.build(s.mcp.allow_hosts, ports)

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
            enrolled=enrolled_check(app),
        )
        # Turns a crash left unanswered, taken before any new turn can be claimed.
        unanswered = hub.turns.take_unanswered()
        answering = asyncio.create_task(_answer(hub, unanswered), name="unanswered-turns")
        tasks = [
            asyncio.create_task(hub.ingest.run(), name="ingest"),
            asyncio.create_task(hub.fleet.run(), name="fleet-monitor"),
        ]
        yield
        answering.cancel()  # what it has not sent yet, the stop sends
        with contextlib.suppress(asyncio.CancelledError):
            await answering
        await _stop_turns(hub)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await hub.fleet.close()


async def _answer(hub: Hub, turns: list[Turn]) -> None:
    """Once the broker link is up, send the replies a crash kept from their devices."""
    if not turns:
        return
    assert hub.ingest is not None
    assert hub.turns is not None
    await hub.ingest.connected.wait()
    try:
        await hub.turns.answer(turns)
    except (TimeoutError, PublishError) as exc:
        logger.warning("could not answer every unanswered turn: %s", exc or "timed out")


async def _stop_turns(hub: Hub) -> None:
    """Stop intake, give the turns running ``stop_grace_seconds``, then fail the rest."""
    assert hub.ingest is not None
    assert hub.turns is not None
    hub.ingest.stop_intake()
    await hub.ingest.drain(hub.settings.stop_grace_seconds)
    await hub.ingest.close()
    try:
        async with asyncio.timeout(PUBLISH_WAIT_SECONDS):
            await hub.turns.answer(hub.turns.take_unanswered())
    except (TimeoutError, PublishError) as exc:
        logger.warning("could not answer every unanswered turn: %s", exc or "timed out")


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


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


async def _check_metrics_reader(request: web.Request, hub: Hub) -> None:
    """Deny by default: the ``[http]`` metrics token, or a superadmin's access token."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        expected = hub.settings.http.metrics_token
        if expected and hmac.compare_digest(_sha256(token), _sha256(expected)):
            return
        state = request.app.get(AUTH)
        if state is not None:
            with contextlib.suppress(Unauthenticated):
                if (await state.authenticate(request)).superadmin:
                    return
                raise Forbidden("only the metrics token or the superadmin may read metrics")
    raise Unauthenticated("send 'Authorization: Bearer <metrics token>'")


@declare(Action.PUBLIC)  # the view checks its own credential (a Prometheus scrape token)
async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus exposition of this hub's metrics."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    hub = request.app[HUB]
    await _check_metrics_reader(request, hub)
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


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every response carries: no caching (tokens, secrets), no MIME sniffing, no
    version banner, and HSTS when this hub itself serves HTTPS."""
    headers = response.headers
    headers["Server"] = SERVER_HEADER
    headers["X-Content-Type-Options"] = "nosniff"
    headers.setdefault("Cache-Control", "no-store")
    hsts = request.app[HUB].settings.http.hsts_seconds
    if request.secure and hsts:
        headers["Strict-Transport-Security"] = f"max-age={hsts}"


def not_reloadable(old: HubSettings, new: HubSettings) -> list[str]:
    """The settings that differ between ``old`` and ``new`` but change only on a restart."""
    stuck = [
        _SECTIONS.get(f.name, f"[{f.name}]")
        for f in fields(HubSettings)
        if f.name not in RELOADABLE and getattr(old, f.name) != getattr(new, f.name)
    ]
    if old.auth.enabled != new.auth.enabled:
        stuck.append("[auth] keys (the API is switched on or off only at start)")
    stuck += [
        f"[auth] {f.name}"
        for f in fields(AuthSettings)
        if f.name not in RELOADABLE_AUTH and getattr(old.auth, f.name) != getattr(new.auth, f.name)
    ]
    if old.http.tls != new.http.tls:
        stuck.append("[http] tls_cert_file (HTTPS is switched on or off only at start)")
    return stuck


async def reload_hub(app: web.Application, settings: HubSettings) -> None:
    """Apply a re-read configuration to the running hub: all of it, or none of it (a
    ConfigError names what needs a restart). Signing keys are swapped in one step, so no
    request sees a mix of old and new keys."""
    hub = app[HUB]
    stuck = not_reloadable(hub.settings, settings)
    if stuck:
        raise ConfigError(f"only a restart can change {', '.join(stuck)}; nothing was changed")
    state = app.get(AUTH)
    tokens = Tokens(settings.auth, state.db) if state is not None else None  # may refuse
    if state is not None and tokens is not None:
        for tenant_id in settings.tenants:
            state.users.ensure_tenant(tenant_id)
        state.tokens, state.settings, state.quotas = tokens, settings.auth, settings.quotas
    await hub.reconfigure(settings)


def create_app(settings: HubSettings, hub: Hub | None = None) -> web.Application:
    """The hub as an aiohttp application."""
    app = web.Application()
    app[HUB] = hub or Hub(settings)
    app.on_response_prepare.append(_security_headers)
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
            hub.mcp_registry.outbound = hub.outbound_policy
        state.mcp_status = hub.mcp_status
        state.metrics = hub.metrics
        state.configured_mcp = lambda tenant: (
            t.mcp_servers if (t := hub.settings.tenants.get(tenant)) else ()
        )
    return app

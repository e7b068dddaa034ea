"""The hub's resources, one cleanup context each, in start-up order: the store, the console's
live events and alert log, the tenants' knowledge, the MCP host, the fleet monitor, the turn
processor, MQTT ingest and konak-fleet (the security core's is
``konak.hub.api.routes.auth_ctx``). Each builds its resource from the ones before it, passed
to its constructor, puts it behind its ``AppKey`` and closes it when the app stops."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Mapping

from aiohttp import ClientSession, web

from konak.hub import database
from konak.hub.alerts import AlertKind, AlertLog
from konak.hub.arbitration import Arbiter
from konak.hub.device_metrics import DeviceCollector
from konak.hub.errors import PublishError
from konak.hub.events import EventBroker
from konak.hub.fleet import FleetMonitor
from konak.hub.ingest import PUBLISH_WAIT_SECONDS, Ingest
from konak.hub.keys import (
    ALERTS,
    AUTH,
    EVENTS,
    FLEET,
    FLEET_MCP_PORT,
    INGEST,
    KNOWLEDGE,
    LIVE,
    MCP,
    METRICS,
    SETTINGS,
    STORE,
    TURNS,
)
from konak.hub.knowledge.service import KnowledgeService, load_embedder
from konak.hub.live import LiveFleet
from konak.hub.mcp_host import McpHost
from konak.hub.outbound import OutboundPolicy
from konak.hub.quotas import Quotas
from konak.hub.settings import TenantSettings
from konak.hub.store import Store, Turn
from konak.hub.turns import TurnProcessor
from konak.protocol import Cmd, Reply

logger = logging.getLogger(__name__)


def mcp_tenants(app: web.Application) -> Mapping[str, TenantSettings]:
    """hub.toml's tenants with the MCP servers their admins added through the API."""
    tenants = app[SETTINGS].tenants()
    auth = app.get(AUTH)
    return auth.mcp_registry.merged(tenants) if auth is not None else tenants


async def apply_mcp(app: web.Application) -> None:
    """Connect, reconnect and drop MCP servers to match the configuration (no restart)."""
    host = app.get(MCP)
    if host is not None:
        await host.configure(mcp_tenants(app))


def outbound_policy(app: web.Application) -> OutboundPolicy:
    """Where servers tenants add may be: public addresses and [mcp] allow_hosts, never this
    hub's own ports."""
    s = app[SETTINGS].current
    ports = (s.http_port, s.fleet_mcp.port, app.get(FLEET_MCP_PORT, 0))
    return OutboundPolicy.build(s.mcp.allow_hosts, ports)


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    """The hub's store (SQLite)."""
    app[STORE] = store = Store(app[SETTINGS].current.database_path)
    devices = DeviceCollector(store)
    app[METRICS].registry.register(devices)
    yield
    app[METRICS].registry.unregister(devices)
    store.close()


async def events_ctx(app: web.Application) -> AsyncIterator[None]:
    """The console's event broker, alert log (a connection of its own) and fleet views."""
    app[EVENTS] = broker = EventBroker()
    app[ALERTS] = AlertLog(db := database.connect(app[SETTINGS].current.database_path))
    auth = app.get(AUTH)
    app[LIVE] = LiveFleet(app[STORE], broker, auth.claims.devices if auth is not None else None)
    yield
    broker.close()
    db.close()


async def close_streams(app: web.Application) -> None:
    """End the open event streams as the hub starts stopping (on_shutdown): aiohttp waits
    for running handlers before the cleanup contexts run."""
    broker = app.get(EVENTS)
    if broker is not None:
        broker.close()


def _alert(app: web.Application, kind: AlertKind, tenant: str, subject: str) -> None:
    """An alert about a tenant's MCP server or quota, through the fleet monitor (which
    starts after the MCP host)."""
    fleet = app.get(FLEET)
    if fleet is None:
        return
    if kind == "mcp_circuit_open":
        detail = f"MCP server {subject} fails: its circuit is open"
    else:
        detail = f"quota {subject} reached: work was refused"
    fleet.tenant_alert(tenant, kind, subject, detail)


async def knowledge_ctx(app: web.Application) -> AsyncIterator[None]:
    """Each tenant's knowledge (``[knowledge]``), with the embedding model when it is
    installed: without it the hub runs, and searching by text answers "unavailable"."""
    live = app[SETTINGS]
    settings = live.current.knowledge
    if not settings.enabled:
        yield
        return
    if settings.directory is None:  # beside the hub database
        directory = live.current.database_path.parent / "knowledge"
        settings = dataclasses.replace(settings, directory=directory)
    embedder = await asyncio.to_thread(load_embedder, settings)
    app[KNOWLEDGE] = service = await KnowledgeService.open(
        settings, quotas=lambda tenant: live.current.quotas.of(tenant), embedder=embedder
    )
    yield
    await service.close()


async def mcp_ctx(app: web.Application) -> AsyncIterator[None]:
    """The MCP host, connected to every tenant's servers."""
    on_open = functools.partial(_alert, app, "mcp_circuit_open")
    app[MCP] = host = McpHost(app[METRICS], on_open)
    await host.configure(mcp_tenants(app))
    yield
    await host.close()


async def fleet_ctx(app: web.Application) -> AsyncIterator[None]:
    """The fleet monitor and its alert checks (with the HTTP client its webhooks use)."""
    async with ClientSession() as http:
        app[FLEET] = fleet = FleetMonitor(
            app[STORE],
            app[SETTINGS].current.fleet,
            app[METRICS],
            http,
            alerts=app[ALERTS],
            live=app[LIVE],
        )
        fleet.refresh_gauge()
        task = asyncio.create_task(fleet.run(), name="fleet-monitor")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await fleet.close()


async def _publish(app: web.Application, reply: Reply) -> None:
    """Publish a reply over ingest's broker link (ingest starts after the turn processor)."""
    await app[INGEST].publish(reply)


async def turns_ctx(app: web.Application) -> AsyncIterator[None]:
    """The turn processor: intents to replies, arbitrated, through the MCP host."""
    live, metrics = app[SETTINGS], app[METRICS]
    app[TURNS] = TurnProcessor(
        app[STORE],
        app[MCP],
        Arbiter(live.current.arbitration_window_seconds),
        metrics,
        functools.partial(_publish, app),
        live.tenants,
        Quotas(
            lambda: live.current.quotas,
            metrics,
            on_refused=functools.partial(_alert, app, "quota_reached"),
        ),
        on_finished=app[LIVE].turn_finished,
    )
    yield


async def ingest_ctx(app: web.Application) -> AsyncIterator[None]:
    """MQTT ingest: the broker link that feeds the fleet monitor and the turn processor. On
    start it answers the turns a crash left unanswered; on stop it drains the turns running."""
    fleet, turns, auth = app[FLEET], app[TURNS], app.get(AUTH)
    app[INGEST] = ingest = Ingest(
        app[SETTINGS].current.mqtt,
        app[METRICS],
        on_status=fleet.on_status,
        on_telemetry=fleet.on_telemetry,
        on_intent=turns.handle,
        on_seen=fleet.on_seen,
        enrolled=auth.enrolled() if auth is not None else None,
    )
    # Turns a crash left unanswered, taken before any new turn can be claimed.
    unanswered = turns.take_unanswered()
    answering = asyncio.create_task(_answer(ingest, turns, unanswered), name="unanswered-turns")
    task = asyncio.create_task(ingest.run(), name="ingest")
    yield
    answering.cancel()  # what it has not sent yet, the stop sends
    with contextlib.suppress(asyncio.CancelledError):
        await answering
    await _stop_turns(ingest, turns, app[SETTINGS].current.stop_grace_seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _answer(ingest: Ingest, turns: TurnProcessor, unanswered: list[Turn]) -> None:
    """Once the broker link is up, send the replies a crash kept from their devices."""
    if not unanswered:
        return
    await ingest.connected.wait()
    try:
        await turns.answer(unanswered)
    except (TimeoutError, PublishError) as exc:
        logger.warning("could not answer every unanswered turn: %s", exc or "timed out")


async def _stop_turns(ingest: Ingest, turns: TurnProcessor, grace_seconds: float) -> None:
    """Stop intake, give the turns running ``grace_seconds``, then fail the rest."""
    ingest.stop_intake()
    await ingest.drain(grace_seconds)
    await ingest.close()
    try:
        async with asyncio.timeout(PUBLISH_WAIT_SECONDS):
            await turns.answer(turns.take_unanswered())
    except (TimeoutError, PublishError) as exc:
        logger.warning("could not answer every unanswered turn: %s", exc or "timed out")


async def fleet_mcp_ctx(app: web.Application) -> AsyncIterator[None]:
    """konak-fleet, the hub's own MCP server, when ``[fleet_mcp]`` enables it."""
    live = app[SETTINGS]
    if not live.current.fleet_mcp.enabled:
        yield
        return
    from konak.hub.mcp_servers.fleet import build_fleet_server, serve_fleet

    ingest = app[INGEST]

    async def publish(cmd: Cmd) -> None:
        await ingest.publish(cmd)

    server = build_fleet_server(app[STORE], publish, live.fleet_tokens)
    async with serve_fleet(live.current.fleet_mcp, server, live.fleet_tokens) as port:
        app[FLEET_MCP_PORT] = port
        yield

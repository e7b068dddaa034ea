"""The console's fleet over the API: devices (seen or enrolled), telemetry, turn history,
announcements and alerts. Transcripts (a device's ``last_turn``, the turn history) need
turns.read; everything is the URL's tenant's only."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from konak.hub.alerts import AlertLog
from konak.hub.api.http import declare, identity_of, note, read_json
from konak.hub.api.schemas import (
    AlertsQuery,
    AnnounceBody,
    FleetQuery,
    TelemetryQuery,
    TurnsQuery,
    UpdateModelsBody,
    parse_query,
)
from konak.hub.errors import PublishError
from konak.hub.events import visible
from konak.hub.fleet import NoTargets, announcements, device_commands
from konak.hub.keys import ALERTS, AUTH, INGEST, LIVE, STORE
from konak.hub.live import TRANSCRIPTS, LiveFleet
from konak.hub.security.errors import NotFound, Unavailable
from konak.hub.security.rbac import Action, Identity, tenant_permissions
from konak.protocol import Cmd


def tenant_of(request: web.Request) -> str:
    """The URL's tenant, which must exist (the guard checked the caller's role in it)."""
    tenant = request.match_info["tenant"]
    request.app[AUTH].users.require_tenant(tenant)
    return tenant


def held_actions(identity: Identity, tenant: str) -> frozenset[Action]:
    """The tenant actions ``identity`` holds in ``tenant`` (as ``/api/auth/me`` lists them)."""
    return tenant_permissions(identity, [tenant]).get(tenant, frozenset())


def actions_of(request: web.Request, tenant: str) -> frozenset[Action]:
    """The tenant actions the signed-in caller holds in ``tenant``."""
    return held_actions(identity_of(request), tenant)


def live_of(request: web.Request) -> LiveFleet:
    """The hub's fleet views (absent from an app serving the API alone)."""
    live = request.app.get(LIVE)
    if live is None:
        raise Unavailable("the fleet is not running on this hub")
    return live


@declare(Action.DEVICES_READ)
async def fleet(request: web.Request) -> web.Response:
    """The tenant's devices: those that reported a status and those enrolled."""
    tenant = tenant_of(request)
    query = parse_query(request.query, FleetQuery)
    actions = actions_of(request, tenant)
    views = [
        visible(view, TRANSCRIPTS, actions)
        for view in live_of(request).fleet(tenant)
        if (query.area is None or view["area"] == query.area)
        and (query.state is None or view["state"] == query.state)
    ]
    return web.json_response({"devices": views})


def _device(request: web.Request, tenant: str) -> dict[str, Any]:
    device = request.match_info["device"]
    view = live_of(request).device(tenant, device)
    if view is None:
        raise NotFound(f"no device {device!r}", code="device_not_found")
    return view


@declare(Action.DEVICES_READ)
async def device(request: web.Request) -> web.Response:
    """One device of the tenant."""
    tenant = tenant_of(request)
    view = _device(request, tenant)
    return web.json_response(visible(view, TRANSCRIPTS, actions_of(request, tenant)))


@declare(Action.DEVICES_READ)
async def telemetry(request: web.Request) -> web.Response:
    """A device's newest telemetry samples, oldest first."""
    tenant = tenant_of(request)
    query = parse_query(request.query, TelemetryQuery)
    device_id = _device(request, tenant)["device"]
    keys = ("received_at", "cpu_percent", "rss_bytes", "temperature_celsius", "stage_latency_ms")
    samples = request.app[STORE].telemetry(tenant, device_id, limit=query.limit)
    return web.json_response({"samples": [{k: s.get(k) for k in keys} for s in reversed(samples)]})


@declare(Action.TURNS_READ)
async def turns(request: web.Request) -> web.Response:
    """The tenant's turns (transcript, intent, outcome, latency), newest first."""
    tenant = tenant_of(request)
    query = parse_query(request.query, TurnsQuery)
    live_of(request)
    page = request.app[STORE].turns(
        tenant, device_id=query.device, before=query.before, limit=query.limit
    )
    next_before = page[-1].created_at if len(page) == query.limit else None
    return web.json_response({"turns": [t.as_dict() for t in page], "next_before": next_before})


@declare(Action.DEVICES_ANNOUNCE)
async def announce(request: web.Request) -> web.Response:
    """Speak a text on one device of the tenant, or on every device of an area."""
    tenant = tenant_of(request)
    body = await read_json(request, AnnounceBody)
    live_of(request)
    note(request, target=f"device:{body.device}" if body.device else f"area:{body.area}")
    try:
        cmds = announcements(request.app[STORE], tenant, body.text, body.device, body.area)
    except NoTargets as exc:
        raise NotFound(exc.message, code=exc.code) from exc
    return web.json_response({"sent": await _send(request, cmds, "announcement")})


@declare(Action.DEVICES_UPDATE)
async def update_models(request: web.Request) -> web.Response:
    """Ask one device, or every device of an area, to pull, verify and swap in its models
    (or a set of the manifest); each reports the result in its status."""
    tenant = tenant_of(request)
    body = await read_json(request, UpdateModelsBody)
    note(request, target=f"device:{body.device}" if body.device else f"area:{body.area}")
    try:
        cmds = device_commands(
            request.app[STORE],
            tenant,
            body.device,
            body.area,
            action="update_models",
            model_set=body.model_set,
        )
    except NoTargets as exc:
        raise NotFound(exc.message, code=exc.code) from exc
    sent = await _send(request, cmds, "update_models command")
    return web.json_response(
        {"sent": sent, "commands": {c.device: c.command_id for c in cmds}}, status=202
    )


async def _send(request: web.Request, cmds: list[Cmd], what: str) -> list[str]:
    """Publish each command; the devices it reached (503 when the broker refuses one)."""
    ingest = request.app[INGEST]
    sent: list[str] = []
    for cmd in cmds:
        try:
            await ingest.publish(cmd)
        except PublishError as exc:
            raise Unavailable(
                f"the broker did not take the {what} (sent to {len(sent)} of {len(cmds)} devices)"
            ) from exc
        sent.append(cmd.device)
    return sent


def _alert_log(request: web.Request) -> tuple[str, str, AlertLog]:
    tenant = tenant_of(request)
    alerts = request.app.get(ALERTS)
    if alerts is None:
        raise Unavailable("the alert log is not running on this hub")
    return tenant, identity_of(request).subject, alerts


@declare(Action.ALERTS_READ)
async def list_alerts(request: web.Request) -> web.Response:
    """The tenant's alerts, newest first, each read or not by the caller."""
    tenant, user, alerts = _alert_log(request)
    query = parse_query(request.query, AlertsQuery)
    page = alerts.page(
        tenant, user, unread_only=query.unread, before_id=query.before_id, limit=query.limit
    )
    return web.json_response(
        {
            "alerts": [alert.as_dict(read=read) for alert, read in page],
            "unread": alerts.unread(tenant, user),
        }
    )


@declare(Action.ALERTS_READ)
async def read_alert(request: web.Request) -> web.Response:
    """Mark one alert read (for the caller only)."""
    tenant, user, alerts = _alert_log(request)
    raw = request.match_info["alert_id"]
    note(request, target=f"alert:{raw[:32]}")
    alert_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None
    if alert_id is None or not alerts.mark_read(tenant, user, alert_id):
        raise NotFound(f"no alert {raw[:32]!r}", code="alert_not_found")
    return web.Response(status=204)


@declare(Action.ALERTS_READ)
async def read_all_alerts(request: web.Request) -> web.Response:
    """Mark every alert of the tenant read (for the caller only)."""
    tenant, user, alerts = _alert_log(request)
    note(request, target="alerts")
    alerts.mark_all_read(tenant, user)
    return web.Response(status=204)

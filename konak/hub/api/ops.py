"""The operator's endpoints beside the API: Prometheus ``/metrics`` and ``/healthz``."""

from __future__ import annotations

import contextlib
import hashlib
import hmac

from aiohttp import web

from konak.hub.api.http import declare
from konak.hub.keys import AUTH, FLEET, INGEST, METRICS, SETTINGS
from konak.hub.security.errors import Forbidden, Unauthenticated
from konak.hub.security.rbac import Action


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _check_metrics_reader(request: web.Request) -> None:
    """Deny by default: the ``[http]`` metrics token, or a superadmin's access token."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        expected = request.app[SETTINGS].current.http.metrics_token
        if expected and hmac.compare_digest(_sha256(token), _sha256(expected)):
            return
        state = request.app.get(AUTH)
        if state is not None:
            with contextlib.suppress(Unauthenticated):
                if state.authenticate(header).superadmin:
                    return
                raise Forbidden("only the metrics token or the superadmin may read metrics")
    raise Unauthenticated("send 'Authorization: Bearer <metrics token>'")


@declare(Action.PUBLIC)  # the view checks its own credential (a Prometheus scrape token)
async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus exposition of this hub's metrics."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    _check_metrics_reader(request)
    fleet = request.app.get(FLEET)
    if fleet is not None:
        fleet.refresh_gauge()
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@declare(Action.PUBLIC)
async def health_view(request: web.Request) -> web.Response:
    """Liveness and whether the broker link is up."""
    ingest = request.app.get(INGEST)
    mqtt_up = ingest is not None and ingest.connected.is_set()
    return web.json_response({"ok": True, "mqtt": mqtt_up}, status=200 if mqtt_up else 503)

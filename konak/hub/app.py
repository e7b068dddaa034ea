"""The hub's aiohttp app factory: state behind typed AppKeys (``konak.hub.keys``), one cleanup
context per resource (``konak.hub.resources``), the HTTP API (``konak.hub.api``), and the
reload a SIGHUP asks for."""

from __future__ import annotations

from dataclasses import fields
from typing import Final

from aiohttp import web

from konak.hub import resources
from konak.hub.api.console import setup_console
from konak.hub.api.ops import health_view, metrics_view
from konak.hub.api.routes import setup_api
from konak.hub.errors import ConfigError
from konak.hub.keys import AUTH, METRICS, SETTINGS, LiveSettings
from konak.hub.metrics import HubMetrics
from konak.hub.security.settings import AuthSettings
from konak.hub.security.tokens import Tokens
from konak.hub.settings import HubSettings

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


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every response carries: no caching (tokens, secrets), no MIME sniffing, no
    version banner, and HSTS when this hub itself serves HTTPS."""
    headers = response.headers
    headers["Server"] = SERVER_HEADER
    headers["X-Content-Type-Options"] = "nosniff"
    headers.setdefault("Cache-Control", "no-store")
    hsts = request.app[SETTINGS].current.http.hsts_seconds
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
    live = app[SETTINGS]
    stuck = not_reloadable(live.current, settings)
    if stuck:
        raise ConfigError(f"only a restart can change {', '.join(stuck)}; nothing was changed")
    state = app.get(AUTH)
    tokens = Tokens(settings.auth, state.db) if state is not None else None  # may refuse
    if state is not None and tokens is not None:
        for tenant_id in settings.tenants:
            state.users.ensure_tenant(tenant_id)
        state.tokens, state.settings, state.quotas = tokens, settings.auth, settings.quotas
    live.current = settings
    await resources.apply_mcp(app)


def create_app(settings: HubSettings) -> web.Application:
    """The hub as an aiohttp application."""
    app = web.Application()
    app[SETTINGS] = LiveSettings(settings)
    app[METRICS] = HubMetrics()
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", health_view)
    app.cleanup_ctx.append(resources.store_ctx)
    setup_api(app, settings)  # the security core's context starts after the store's
    app.on_shutdown.append(resources.close_streams)
    app.cleanup_ctx.extend(
        [
            resources.events_ctx,
            resources.knowledge_ctx,
            resources.mcp_ctx,
            resources.fleet_ctx,
            resources.turns_ctx,
            resources.ingest_ctx,
            resources.fleet_mcp_ctx,
        ]
    )
    setup_console(app)  # last: its catch-all route must not shadow any other
    return app

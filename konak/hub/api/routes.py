"""Wires the JSON API into the hub app: the guard middleware, the security core (the auth
database and Redis as one cleanup context) behind ``AUTH``, the routes and
/api/openapi.json."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from konak.hub import resources
from konak.hub.api import (
    accounts,
    claims,
    devices,
    events,
    fleet,
    knowledge,
    knowledge_jobs,
    mcp,
    reset,
    voice,
)
from konak.hub.api.http import declare, guard
from konak.hub.api.openapi import ApiRoute, build_openapi
from konak.hub.api.schemas import (
    AlertsQuery,
    AnnounceBody,
    AuditQueryParams,
    ClaimBody,
    EnrollBody,
    FleetQuery,
    InvitationAcceptBody,
    InvitationJoinBody,
    LoginBody,
    McpServerBody,
    McpServerCreateBody,
    MemberBody,
    PasswordChangeBody,
    RefreshBody,
    ResetConfirmBody,
    ResetRequestBody,
    RoleBody,
    TelemetryQuery,
    TenantBody,
    TokenQuery,
    TurnsQuery,
    UpdateModelsBody,
)
from konak.hub.keys import AUTH, METRICS, SETTINGS, LiveSettings
from konak.hub.metrics import HubMetrics
from konak.hub.security.rbac import Action
from konak.hub.security.reset import CONFIRM_PATH, INVITATION_PATH
from konak.hub.security.state import AuthState
from konak.hub.settings import HubSettings
from konak.provisioning.claims import Provisioner

logger = logging.getLogger(__name__)

T: Final = "/api/tenants/{tenant}"
ROUTES: Final = (
    ApiRoute("POST", "/api/auth/login", accounts.login, "login", LoginBody),
    ApiRoute("POST", "/api/auth/refresh", accounts.refresh, "refresh", RefreshBody),
    ApiRoute("POST", "/api/auth/logout", accounts.logout, "logout", ok_status=204),
    ApiRoute("GET", "/api/auth/me", accounts.me, "me"),
    ApiRoute(
        "POST", "/api/auth/password", accounts.change_password, "password", PasswordChangeBody, 204
    ),
    ApiRoute("GET", "/api/tenants", accounts.list_tenants, "tenants"),
    ApiRoute("POST", "/api/tenants", accounts.create_tenant, "create_tenant", TenantBody, 201),
    ApiRoute("GET", f"{T}/users", accounts.list_members, "members"),
    ApiRoute("POST", f"{T}/users", accounts.add_member, "add_member", MemberBody, 202),
    ApiRoute("PUT", f"{T}/users/{{user_id}}/role", accounts.set_role, "set_role", RoleBody),
    ApiRoute(
        "DELETE", f"{T}/users/{{user_id}}", accounts.remove_member, "remove_member", None, 204
    ),
    ApiRoute("GET", f"{T}/audit", accounts.audit_page, "audit", query=AuditQueryParams),
    ApiRoute(
        "GET", f"{T}/audit.jsonl", accounts.audit_export, "audit_export", query=AuditQueryParams
    ),
    ApiRoute("POST", f"{T}/claims", devices.create_claim, "create_claim", ClaimBody, 201),
    ApiRoute("GET", f"{T}/devices", devices.list_devices, "devices"),
    ApiRoute("DELETE", f"{T}/devices/{{device}}", devices.revoke_device, "revoke", None, 204),
    ApiRoute("POST", "/api/enroll", devices.enroll, "enroll", EnrollBody, 201),
    ApiRoute("GET", f"{T}/mcp-servers", mcp.list_servers, "mcp_servers"),
    ApiRoute("POST", f"{T}/mcp-servers", mcp.create_server, "create_mcp", McpServerCreateBody, 201),
    ApiRoute("GET", f"{T}/mcp-servers/{{name}}", mcp.get_server, "mcp_server"),
    ApiRoute("PUT", f"{T}/mcp-servers/{{name}}", mcp.update_server, "update_mcp", McpServerBody),
    ApiRoute("DELETE", f"{T}/mcp-servers/{{name}}", mcp.delete_server, "delete_mcp", None, 204),
    # The console's fleet, turns, announcements, live events and alerts (issue 15).
    ApiRoute("GET", f"{T}/fleet", fleet.fleet, "fleet", query=FleetQuery),
    ApiRoute("GET", f"{T}/fleet/{{device}}", fleet.device, "fleet_device"),
    ApiRoute(
        "GET", f"{T}/fleet/{{device}}/telemetry", fleet.telemetry, "telemetry", query=TelemetryQuery
    ),
    ApiRoute("GET", f"{T}/turns", fleet.turns, "turns", query=TurnsQuery),
    ApiRoute("POST", f"{T}/announce", fleet.announce, "announce", AnnounceBody),
    ApiRoute(
        "POST", f"{T}/update-models", fleet.update_models, "update_models", UpdateModelsBody, 202
    ),
    ApiRoute("GET", f"{T}/events", events.events, "events", streams="text/event-stream"),
    ApiRoute("GET", f"{T}/alerts", fleet.list_alerts, "alerts", query=AlertsQuery),
    ApiRoute("POST", f"{T}/alerts/read-all", fleet.read_all_alerts, "read_alerts", None, 204),
    ApiRoute("POST", f"{T}/alerts/{{alert_id}}/read", fleet.read_alert, "read_alert", None, 204),
)
# The console's additions (issue 15): voice config, claims, testing an MCP server.
CONSOLE_ROUTES: Final = (
    *voice.ROUTES,
    *claims.ROUTES,
    ApiRoute("POST", f"{T}/mcp-servers/{{name}}/test", mcp.test_server, "test_mcp"),
    *knowledge.ROUTES,  # issue 17
    *knowledge_jobs.ROUTES,
)
# Served only when [auth.smtp] is configured (adding a user mails an invitation: without
# it, add_member answers 503 and the operator uses ``konak hub add-user``).
RESET_ROUTES: Final = (
    ApiRoute(
        "POST",
        "/api/auth/password-reset",
        reset.request_reset,
        "password_reset",
        ResetRequestBody,
        202,
    ),
    ApiRoute("GET", CONFIRM_PATH, reset.check_reset, "password_reset_check", query=TokenQuery),
    ApiRoute(
        "POST",
        CONFIRM_PATH,
        reset.confirm_reset,
        "password_reset_confirm",
        ResetConfirmBody,
        204,
    ),
    ApiRoute("GET", INVITATION_PATH, reset.check_invitation, "invitation_check", query=TokenQuery),
    ApiRoute(
        "POST",
        INVITATION_PATH,
        reset.accept_invitation,
        "invitation_accept",
        InvitationAcceptBody,
        201,
    ),
    ApiRoute(
        "POST",
        f"{INVITATION_PATH}/join",
        reset.join_invitation,
        "invitation_join",
        InvitationJoinBody,
        201,
    ),
)
SERVED: Final = web.AppKey("konak_api_routes", tuple[ApiRoute, ...])


async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
    """The security core's resources: Redis (when the limits are shared), the auth database."""
    state = app[AUTH]
    await state.start()
    yield
    await state.close()


@declare(Action.PUBLIC)
async def openapi_view(request: web.Request) -> web.Response:
    """The OpenAPI document of this API."""
    served = request.app[SERVED]
    return web.json_response(build_openapi(served))


def setup_api(
    app: web.Application, settings: HubSettings, provisioner: Provisioner | None = None
) -> None:
    """Add the guard to ``app`` (always: deny by default) and, when signing keys are
    configured, the API itself. ``provisioner`` replaces the dynamic-security one. An app
    ``create_app`` did not make (an API alone) gets its own settings and metrics."""
    if SETTINGS not in app:
        app[SETTINGS] = LiveSettings(settings)
    if METRICS not in app:
        app[METRICS] = HubMetrics()
    app.middlewares.append(guard)
    if not settings.auth.enabled:
        return
    app[AUTH] = AuthState.build(  # checked before the hub starts
        settings,
        provisioner,
        mcp_on_change=functools.partial(resources.apply_mcp, app),
        mcp_outbound=functools.partial(resources.outbound_policy, app),
    )
    app.cleanup_ctx.append(auth_ctx)
    knowledge_jobs.setup_jobs(app)
    served: tuple[ApiRoute, ...] = (
        ROUTES + CONSOLE_ROUTES + (RESET_ROUTES if settings.auth.smtp else ())
    )
    app[SERVED] = served
    for route in served:
        app.router.add_route(route.method, route.path, route.handler, name=route.name)
    app.router.add_get("/api/openapi.json", openapi_view, name="openapi")

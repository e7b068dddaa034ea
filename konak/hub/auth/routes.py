"""Wires the JSON API into the hub app: the guard middleware, the auth database as a
cleanup context behind ``AUTH``, the routes and /api/openapi.json."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from konak.hub import database
from konak.hub.auth import api, devices, mcp_api, reset_api
from konak.hub.auth.audit import AuditLog
from konak.hub.auth.http import AUTH, AuthState, guard
from konak.hub.auth.openapi import ApiRoute, build_openapi
from konak.hub.auth.passwords import Hasher, PasswordPolicy
from konak.hub.auth.ratelimit import Lockout, RateLimiter
from konak.hub.auth.rbac import Action, declare
from konak.hub.auth.redis_limits import RedisBuckets, RedisUnreachable
from konak.hub.auth.redis_lockout import RedisLockout
from konak.hub.auth.reset import CONFIRM_PATH, INVITATION_PATH, Mailer, PasswordResets
from konak.hub.auth.schemas import (
    AuditQueryParams,
    ClaimBody,
    EnrollBody,
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
    TenantBody,
    TokenQuery,
)
from konak.hub.auth.tokens import Tokens
from konak.hub.auth.users import Users
from konak.hub.mcp_registry import McpRegistry
from konak.hub.settings import HubSettings, McpServerSettings
from konak.provisioning.claims import Claims, DynsecProvisioner, Provisioner

logger = logging.getLogger(__name__)

T: Final = "/api/tenants/{tenant}"
ROUTES: Final = (
    ApiRoute("POST", "/api/auth/login", api.login, "login", LoginBody),
    ApiRoute("POST", "/api/auth/refresh", api.refresh, "refresh", RefreshBody),
    ApiRoute("POST", "/api/auth/logout", api.logout, "logout", ok_status=204),
    ApiRoute("GET", "/api/auth/me", api.me, "me"),
    ApiRoute(
        "POST", "/api/auth/password", api.change_password, "password", PasswordChangeBody, 204
    ),
    ApiRoute("GET", "/api/tenants", api.list_tenants, "tenants"),
    ApiRoute("POST", "/api/tenants", api.create_tenant, "create_tenant", TenantBody, 201),
    ApiRoute("GET", f"{T}/users", api.list_members, "members"),
    ApiRoute("POST", f"{T}/users", api.add_member, "add_member", MemberBody, 202),
    ApiRoute("PUT", f"{T}/users/{{user_id}}/role", api.set_role, "set_role", RoleBody),
    ApiRoute("DELETE", f"{T}/users/{{user_id}}", api.remove_member, "remove_member", None, 204),
    ApiRoute("GET", f"{T}/audit", api.audit_page, "audit", query=AuditQueryParams),
    ApiRoute("GET", f"{T}/audit.jsonl", api.audit_export, "audit_export", query=AuditQueryParams),
    ApiRoute("POST", f"{T}/claims", devices.create_claim, "create_claim", ClaimBody, 201),
    ApiRoute("GET", f"{T}/devices", devices.list_devices, "devices"),
    ApiRoute("DELETE", f"{T}/devices/{{device}}", devices.revoke_device, "revoke", None, 204),
    ApiRoute("POST", "/api/enroll", devices.enroll, "enroll", EnrollBody, 201),
    ApiRoute("GET", f"{T}/mcp-servers", mcp_api.list_servers, "mcp_servers"),
    ApiRoute(
        "POST", f"{T}/mcp-servers", mcp_api.create_server, "create_mcp", McpServerCreateBody, 201
    ),
    ApiRoute("GET", f"{T}/mcp-servers/{{name}}", mcp_api.get_server, "mcp_server"),
    ApiRoute(
        "PUT", f"{T}/mcp-servers/{{name}}", mcp_api.update_server, "update_mcp", McpServerBody
    ),
    ApiRoute("DELETE", f"{T}/mcp-servers/{{name}}", mcp_api.delete_server, "delete_mcp", None, 204),
)
# Served only when [auth.smtp] is configured (adding a user mails an invitation: without
# it, add_member answers 503 and the operator uses ``konak hub add-user``).
RESET_ROUTES: Final = (
    ApiRoute(
        "POST",
        "/api/auth/password-reset",
        reset_api.request_reset,
        "password_reset",
        ResetRequestBody,
        202,
    ),
    ApiRoute("GET", CONFIRM_PATH, reset_api.check_reset, "password_reset_check", query=TokenQuery),
    ApiRoute(
        "POST",
        CONFIRM_PATH,
        reset_api.confirm_reset,
        "password_reset_confirm",
        ResetConfirmBody,
        204,
    ),
    ApiRoute(
        "GET", INVITATION_PATH, reset_api.check_invitation, "invitation_check", query=TokenQuery
    ),
    ApiRoute(
        "POST",
        INVITATION_PATH,
        reset_api.accept_invitation,
        "invitation_accept",
        InvitationAcceptBody,
        201,
    ),
    ApiRoute(
        "POST",
        f"{INVITATION_PATH}/join",
        reset_api.join_invitation,
        "invitation_join",
        InvitationJoinBody,
        201,
    ),
)
SERVED: Final = web.AppKey("konak_api_routes", tuple[ApiRoute, ...])


def _configured(settings: HubSettings, tenant: str) -> tuple[McpServerSettings, ...]:
    found = settings.tenants.get(tenant)
    return found.mcp_servers if found is not None else ()


@declare(Action.PUBLIC)
async def openapi_view(request: web.Request) -> web.Response:
    """The OpenAPI document of this API."""
    served = request.app[SERVED]
    return web.json_response(build_openapi(served))


def setup_auth(
    app: web.Application, settings: HubSettings, provisioner: Provisioner | None = None
) -> None:
    """Add the guard to ``app`` (always: deny by default) and, when signing keys are
    configured, the API itself. ``provisioner`` replaces the dynamic-security one."""
    app.middlewares.append(guard)
    if not settings.auth.enabled:
        return
    auth = settings.auth
    prov = settings.provisioning
    if provisioner is None and prov.enabled:
        provisioner = DynsecProvisioner(
            settings.mqtt.host, settings.mqtt.port, prov.username, prov.password
        )
    broker = (prov.broker_host or settings.mqtt.host, prov.broker_port or settings.mqtt.port)

    # Built now (app state may not change once the app runs); the context closes it.
    redis = RedisBuckets(auth.limit_backend) if auth.limit_backend.backend == "redis" else None
    db = database.connect(settings.database_path)
    hasher = Hasher(time_cost=auth.argon2_time_cost, memory_cost_kib=auth.argon2_memory_kib)
    policy = PasswordPolicy.load(auth.password_min_length, auth.common_passwords_file)
    users = Users(db, hasher, policy)
    for tenant_id in settings.tenants:
        users.ensure_tenant(tenant_id)
    app[AUTH] = AuthState(
        settings=auth,
        db=db,
        users=users,
        tokens=Tokens(auth, db),
        audit=AuditLog(db),
        claims=Claims(db),
        limiter=RateLimiter(auth, redis),
        lockout=RedisLockout(redis.client, auth) if redis is not None else Lockout(auth),
        provisioner=provisioner,
        broker_address=broker,
        resets=(
            PasswordResets(db, auth.reset_token_seconds, auth.invitation_token_seconds)
            if auth.smtp
            else None
        ),
        mailer=Mailer(auth.smtp) if auth.smtp else None,
        quotas=settings.quotas,
        mcp_registry=McpRegistry(db),
        configured_mcp=lambda tenant: _configured(settings, tenant),
    )
    state = app[AUTH]

    async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
        if redis is not None:
            try:
                await redis.start()
            except RedisUnreachable:
                await redis.close()
                db.close()
                raise
        yield
        if redis is not None:
            await redis.close()
        for task in list(state.background):
            task.cancel()
        await asyncio.gather(*state.background, return_exceptions=True)
        db.close()

    app.cleanup_ctx.append(auth_ctx)
    served: tuple[ApiRoute, ...] = ROUTES + (RESET_ROUTES if auth.smtp else ())
    app[SERVED] = served
    for route in served:
        app.router.add_route(route.method, route.path, route.handler, name=route.name)
    app.router.add_get("/api/openapi.json", openapi_view, name="openapi")

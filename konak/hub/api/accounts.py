"""The JSON API's handlers: sign-in, sessions, tenants, members and roles, the audit log."""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from konak.hub.api.http import client_address, declare, identity_of, note, read_json, stream_lines
from konak.hub.api.reset import INVITED, invite
from konak.hub.api.schemas import (
    AuditQueryParams,
    LoginBody,
    MemberBody,
    PasswordChangeBody,
    RefreshBody,
    RoleBody,
    TenantBody,
    parse_query,
)
from konak.hub.keys import AUTH
from konak.hub.security.audit import PLATFORM_TENANT, AuditQuery
from konak.hub.security.errors import Forbidden, NotFound, Unauthenticated
from konak.hub.security.rbac import Action, platform_permissions, tenant_permissions
from konak.hub.security.users import normalise_email

NO_CONTENT: Final = 204
ACCEPTED: Final = 202


@declare(Action.LOGIN)
async def login(request: web.Request) -> web.Response:
    """E-mail + password -> access and refresh token; failures count towards a lock-out of
    the account from this address and a slow-down of the account."""
    state = request.app[AUTH]
    body = await read_json(request, LoginBody)
    email = normalise_email(body.email)
    note(request, actor=email, target=f"user:{email}")
    address = client_address(request, state.settings)
    await state.lockout.check(email, address)
    user = state.users.by_email(email)
    ok = await asyncio.to_thread(
        state.users.hasher.verify, user.password_hash if user else None, body.password
    )
    if user is None or not ok or user.disabled:
        await state.lockout.failed(email, address)
        raise Unauthenticated("wrong e-mail or password", code="bad_credentials")
    await state.lockout.succeeded(email, address)
    if state.users.hasher.needs_rehash(user.password_hash):
        state.users.rehash(user.user_id, body.password)
    pair, _ = state.tokens.issue(user.user_id)
    return web.json_response(pair.as_dict())


@declare(Action.REFRESH)
async def refresh(request: web.Request) -> web.Response:
    """Rotate a refresh token; reusing one signs its whole session family out."""
    state = request.app[AUTH]
    body = await read_json(request, RefreshBody)
    try:
        pair, user_id = state.tokens.rotate(body.refresh_token)
    except Unauthenticated as exc:
        note(request, target=f"refresh:{exc.code}")
        raise
    user = state.users.by_id(user_id)
    if user is None or user.disabled:
        raise Unauthenticated("this account is not active", code="token_revoked")
    note(request, actor=user.email)
    return web.json_response(pair.as_dict())


@declare(Action.SELF)
async def logout(request: web.Request) -> web.Response:
    """Sign this session out (its refresh and access tokens stop working)."""
    identity = identity_of(request)
    if identity.family_id is not None:
        request.app[AUTH].tokens.revoke_family(identity.family_id, "logout")
    return web.Response(status=NO_CONTENT)


@declare(Action.SELF)
async def me(request: web.Request) -> web.Response:
    """Who the token belongs to and their role in each tenant."""
    identity = identity_of(request)
    tenants = [t["tenant_id"] for t in request.app[AUTH].users.tenants()]
    return web.json_response(
        {
            "user_id": identity.subject,
            "email": identity.email,
            "superadmin": identity.superadmin,
            "roles": {t: r.value for t, r in sorted(identity.roles.items())},
            "permissions": {
                t: sorted(a.value for a in actions)
                for t, actions in tenant_permissions(identity, tenants).items()
            },
            "platform_permissions": sorted(a.value for a in platform_permissions(identity)),
        }
    )


@declare(Action.SELF)
async def change_password(request: web.Request) -> web.Response:
    """Change one's password after proving the current one (wrong ones count like failed
    logins); every session is signed out."""
    state = request.app[AUTH]
    identity = identity_of(request)
    body = await read_json(request, PasswordChangeBody)
    user = state.users.by_id(identity.subject)
    assert user is not None
    address = client_address(request, state.settings)
    await state.lockout.check(user.email, address)
    if not await asyncio.to_thread(
        state.users.hasher.verify, user.password_hash, body.current_password
    ):
        await state.lockout.failed(user.email, address)
        raise Unauthenticated("the current password is wrong", code="bad_credentials")
    await state.lockout.succeeded(user.email, address)
    await asyncio.to_thread(state.users.set_password, user.user_id, body.new_password)
    state.tokens.revoke_user(user.user_id, "password_changed")
    return web.Response(status=NO_CONTENT)


@declare(Action.TENANTS_LIST)
async def list_tenants(request: web.Request) -> web.Response:
    """The tenants the caller has a role in (every tenant for the superadmin)."""
    identity = identity_of(request)
    users = request.app[AUTH].users
    only = None if identity.superadmin else list(identity.roles)
    return web.json_response({"tenants": users.tenants(only)})


@declare(Action.TENANTS_CREATE)
async def create_tenant(request: web.Request) -> web.Response:
    """Create a tenant (platform superadmin only)."""
    body = await read_json(request, TenantBody)
    note(request, target=f"tenant:{body.tenant_id}", tenant=PLATFORM_TENANT)
    request.app[AUTH].users.create_tenant(body.tenant_id, body.name)
    return web.json_response({"tenant_id": body.tenant_id, "name": body.name}, status=201)


def _tenant(request: web.Request) -> str:
    tenant = request.match_info["tenant"]
    request.app[AUTH].users.require_tenant(tenant)
    return tenant


@declare(Action.USERS_READ)
async def list_members(request: web.Request) -> web.Response:
    """The users of a tenant and their roles."""
    tenant = _tenant(request)
    return web.json_response({"users": request.app[AUTH].users.members(tenant)})


@declare(Action.USERS_WRITE)
async def add_member(request: web.Request) -> web.Response:
    """Invite an address into this tenant with a role: a single-use link is mailed to it, and
    only the mailbox's owner gives the account (new or existing) the role. The answer is the
    same whether or not the address has an account, here or elsewhere."""
    state = request.app[AUTH]
    tenant = _tenant(request)
    body = await read_json(request, MemberBody)
    email = normalise_email(body.email)
    note(request, target=f"user:{email}")
    await invite(state, tenant, email, body.role, identity_of(request).subject)
    return web.json_response(INVITED, status=ACCEPTED)


def _member(request: web.Request, tenant: str) -> str:
    user_id = request.match_info["user_id"]
    note(request, target=f"user:{user_id}")
    users = request.app[AUTH].users
    member = next((m for m in users.members(tenant) if m["user_id"] == user_id), None)
    if member is None:
        raise NotFound("no such member in this tenant")
    target = users.by_id(user_id)
    if target is not None and target.superadmin and not identity_of(request).superadmin:
        raise Forbidden("only the superadmin may change a superadmin's roles")
    return user_id


@declare(Action.USERS_WRITE)
async def set_role(request: web.Request) -> web.Response:
    """Change a member's role."""
    tenant = _tenant(request)
    user_id = _member(request, tenant)
    body = await read_json(request, RoleBody)
    request.app[AUTH].users.set_role(tenant, user_id, body.role)
    return web.json_response({"user_id": user_id, "role": body.role.value})


@declare(Action.USERS_WRITE)
async def remove_member(request: web.Request) -> web.Response:
    """Take a user's role in this tenant away."""
    tenant = _tenant(request)
    user_id = _member(request, tenant)
    request.app[AUTH].users.remove(tenant, user_id)
    return web.Response(status=NO_CONTENT)


def _audit_query(request: web.Request, tenant: str) -> AuditQuery:
    q = parse_query(request.query, AuditQueryParams)
    return AuditQuery(tenant_id=tenant, **q.model_dump())


@declare(Action.AUDIT_READ)
async def audit_page(request: web.Request) -> web.Response:
    """The tenant's audit records, newest first, filtered and paged by ``before_id``."""
    tenant = _tenant(request)
    entries, cursor = request.app[AUTH].audit.page(_audit_query(request, tenant))
    return web.json_response({"entries": [e.as_dict() for e in entries], "next": cursor})


@declare(Action.AUDIT_READ)
async def audit_export(request: web.Request) -> web.StreamResponse:
    """Every matching audit record as JSON lines."""
    tenant = _tenant(request)
    query = _audit_query(request, tenant)
    return await stream_lines(request, request.app[AUTH].audit.export(query))

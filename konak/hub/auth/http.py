"""The API's HTTP plumbing: the guard middleware (rate limits, authentication, one
``authorize`` per request, the audit record of every mutating request), JSON bodies, streamed
JSON lines and error responses."""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from konak.hub.auth.audit import PLATFORM_TENANT, AuditLog
from konak.hub.auth.errors import (
    ApiError,
    Forbidden,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unsupported,
)
from konak.hub.auth.ratelimit import LoginLockout, RateLimiter, client_address
from konak.hub.auth.rbac import ANONYMOUS, Action, Identity, Resource, authorize, declared
from konak.hub.auth.reset import Mailer, PasswordResets
from konak.hub.auth.settings import AuthSettings
from konak.hub.auth.tokens import Tokens
from konak.hub.auth.users import Users
from konak.hub.mcp_registry import McpRegistry
from konak.hub.metrics import HubMetrics
from konak.hub.quotas import QuotaSettings
from konak.hub.settings import McpServerSettings
from konak.provisioning.claims import Claims, Provisioner

logger = logging.getLogger(__name__)

MUTATING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# An anonymous request that ended so presented a working credential (password, refresh,
# claim or reset token); any other anonymous answer (a 202, an error) proves nothing.
PROVING_STATUSES: Final = frozenset({200, 201, 204})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)


@dataclass
class AuthState:
    """The API's parts, reached through ``AUTH``."""

    settings: AuthSettings
    db: sqlite3.Connection
    users: Users
    tokens: Tokens
    audit: AuditLog
    claims: Claims
    limiter: RateLimiter
    lockout: LoginLockout
    provisioner: Provisioner | None = None
    broker_address: tuple[str, int] = ("127.0.0.1", 1883)
    resets: PasswordResets | None = None
    mailer: Mailer | None = None
    background: set[asyncio.Task[None]] = field(default_factory=set)
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    enrol_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    extra: dict[str, Any] = field(default_factory=dict)
    mcp_registry: McpRegistry | None = None
    # hub.toml's MCP servers of a tenant, and (connected, tool names) of a running server.
    configured_mcp: Callable[[str], tuple[McpServerSettings, ...]] = lambda _tenant: ()
    mcp_status: Callable[[str, str], tuple[bool, list[str]] | None] | None = None
    # The hub's metrics (create_app shares its own; a bare API counts in its own registry).
    metrics: HubMetrics = field(default_factory=HubMetrics)

    async def authenticate(self, request: web.Request) -> Identity:
        """The identity of a request's bearer token; Unauthenticated otherwise."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send 'Authorization: Bearer <access token>'")
        claims = self.tokens.verify_access(token.strip())
        user = self.users.by_id(claims.user_id)
        if user is None or user.disabled:
            raise Unauthenticated("this account is not active", code="token_revoked")
        return self.users.identity(user, claims.family_id)


AUTH = web.AppKey("auth", AuthState)
IDENTITY: Final = web.RequestKey("konak_identity", Identity)
AUDIT: Final = web.RequestKey("konak_audit", dict[str, str])


def identity_of(request: web.Request) -> Identity:
    """The authenticated identity (the guard put it there)."""
    identity: Identity | None = request.get(IDENTITY)
    if identity is None:
        raise Unauthenticated("sign in first")
    return identity


def note(request: web.Request, **fields: str) -> None:
    """Tell the audit record of this request its actor, tenant or target."""
    request[AUDIT].update(fields)


def client_ip(request: web.Request) -> str:
    """The client's address: the peer, or behind a proxy named in ``[auth]
    trusted_proxies``, the address it forwarded (see ``ratelimit.client_address``)."""
    state = request.app.get(AUTH)
    if state is None:
        return request.remote or "unknown"
    return client_address(request, state.settings)


def error_response(exc: ApiError, details: list[dict[str, Any]] | None = None) -> web.Response:
    """The JSON body of an error."""
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if details:
        body["details"] = details
    response = web.json_response({"error": body}, status=exc.status)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_seconds)))
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="konak"'
    return response


class InvalidBody(ApiError):
    """The JSON body does not match the request schema."""

    code = "invalid_body"

    def __init__(self, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.details = details


async def read_json(request: web.Request, model: type[M]) -> M:
    """Parse and validate a JSON body against ``model``, within the size limit."""
    state = request.app[AUTH]
    limit = state.settings.max_body_bytes
    if request.content_type != "application/json":
        raise Unsupported("send the body as application/json")
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the body is over {limit} bytes")
    body = bytearray()
    async for chunk in request.content.iter_chunked(16 * 1024):
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"the body is over {limit} bytes")
    try:
        return model.model_validate_json(bytes(body))
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in err["loc"]), "problem": err["msg"]}
            for err in exc.errors(include_input=False, include_url=False)
        ]
        raise InvalidBody("the body does not match the request schema", details) from exc


async def stream_lines(
    request: web.Request, lines: Iterable[str], content_type: str = "application/x-ndjson"
) -> web.StreamResponse:
    """Send ``lines`` as they are produced (chunked), never holding them all in memory."""
    response = web.StreamResponse(headers={"Content-Type": content_type})
    await response.prepare(request)
    for line in lines:
        await response.write(line.encode())  # waits while the client is slower than us
    await response.write_eof()
    return response


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    return "denied" if status in (401, 403, 404, 429) else "error"


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Deny by default: every route declares its action, and each request is authorised."""
    match = request.match_info
    if match.http_exception is not None:
        return await handler(request)  # 404/405 from the router
    state = request.app.get(AUTH)
    action = declared(match.handler)
    ip = client_ip(request)
    # The URL's tenant is the caller's choice: it is recorded only when the signed-in
    # identity holds a role there.
    request[AUDIT] = {"actor": "", "tenant": PLATFORM_TENANT, "target": ""}
    proven = False  # an identity was signed in and authorised, or holds the URL's tenant
    status = 500
    try:
        if action is None:
            raise Forbidden("this route declares no action", code="undeclared_route")
        identity: Identity | None = None
        if state is not None and action is not Action.PUBLIC:
            await state.limiter.check_ip(ip, match.route.name)
        if action not in ANONYMOUS:
            if state is None:
                raise Unauthenticated("the API is not configured on this hub")
            identity = await state.authenticate(request)
            request[AUDIT]["actor"] = identity.email
            tenant = match.get("tenant")
            if tenant is not None and (identity.superadmin or tenant in identity.roles):
                request[AUDIT]["tenant"] = tenant  # a member's denied attempt is the tenant's
                proven = True
            await state.limiter.check_user(identity.subject)
        authorize(identity, action, Resource(match.get("tenant")))
        if identity is not None:
            request[IDENTITY] = identity
            proven = True
        response = await handler(request)
        status = response.status
        return response
    except InvalidBody as exc:
        status = exc.status
        return error_response(exc, exc.details)
    except ApiError as exc:
        status = exc.status
        if state is not None and not proven:
            state.metrics.http_refused.labels(exc.code).inc()
        return error_response(exc)
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        if state is not None and request.method in MUTATING and action is not None:
            _audit(state, request, action, ip, status, proven)


def _audit(
    state: AuthState,
    request: web.Request,
    action: Action,
    ip: str,
    status: int,
    proven: bool,
) -> None:
    """One audit record of a mutating request. A 429 is counted (``http_refused``), never
    written: rate limits must cap the log too. A request that proved no identity goes to
    the platform's capped records, never to the tenant its URL names."""
    if status == 429:
        return
    audit = request[AUDIT]
    actor, target, outcome = audit["actor"] or "anonymous", audit["target"], _outcome(status)
    proved = (
        proven
        or audit["tenant"] != PLATFORM_TENANT  # a handler proved it (a redeemed claim token)
        or (status in PROVING_STATUSES and action in ANONYMOUS)
    )
    if proved:
        state.audit.record(
            tenant_id=audit["tenant"],
            actor=actor,
            action=action.value,
            target=target or request.path,
            ip=ip,
            outcome=outcome,
            status=status,
        )
    elif not state.audit.record_unproven(
        actor=actor,
        action=action.value,
        target=target or request.path,
        ip=ip,
        outcome=outcome,
        status=status,
    ):
        state.metrics.audit_suppressed.inc()

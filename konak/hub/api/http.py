"""The API's HTTP plumbing: the actions routes declare, the client's address, the guard
middleware (rate limits, authentication, one ``authorize`` per request, the audit record of
every mutating request), JSON bodies, streamed JSON lines and error responses."""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from konak.hub.api.errors import (
    API_ERRORS,
    ApiError,
    BadRequest,
    TooLarge,
    Unsupported,
    status_of,
)
from konak.hub.keys import AUTH, METRICS
from konak.hub.security.audit import PLATFORM_TENANT
from konak.hub.security.errors import Forbidden, RateLimited, Unauthenticated
from konak.hub.security.ratelimit import Address, Network, parse_address
from konak.hub.security.rbac import ANONYMOUS, Action, Identity, Resource, authorize
from konak.hub.security.settings import AuthSettings
from konak.hub.security.state import AuthState

logger = logging.getLogger(__name__)

MUTATING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# An anonymous request that ended so presented a working credential (password, refresh,
# claim or reset token); any other anonymous answer (a 202, an error) proves nothing.
PROVING_STATUSES: Final = frozenset({200, 201, 204})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])
ACTION_ATTRIBUTE: Final = "__konak_action__"
MAX_FORWARDED_HOPS: Final = 32


def declare(action: Action) -> Callable[[F], F]:
    """Mark an HTTP handler with the action it takes (undeclared handlers are refused)."""

    def mark(handler: F) -> F:
        setattr(handler, ACTION_ATTRIBUTE, action)
        return handler

    return mark


def declared(handler: object) -> Action | None:
    """The action a handler declared, or None."""
    action = getattr(handler, ACTION_ATTRIBUTE, None)
    return action if isinstance(action, Action) else None


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


def _forwarded_chain(headers: Mapping[str, str], settings: AuthSettings) -> list[str]:
    """The nodes of the configured forwarding header, nearest client first."""
    values = [v for k, v in headers.items() if k.lower() == settings.forwarded_header]
    nodes: list[str] = []
    for value in values:
        for element in value.split(","):
            if settings.forwarded_header == "x-forwarded-for":
                nodes.append(element)
                continue
            pairs = (p.partition("=") for p in element.split(";"))
            nodes += [v for k, _, v in pairs if k.strip().lower() == "for"] or ["unknown"]
    return nodes[-MAX_FORWARDED_HOPS:]


def client_address(request: web.Request, settings: AuthSettings) -> str:
    """The client's address: the peer, or, when the peer is a trusted proxy, the nearest
    address in its forwarding header that is not itself a trusted proxy."""
    peer = request.remote or "unknown"
    if not settings.trusted_proxies:
        return peer
    trusted: list[Network] = [
        ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies
    ]

    def is_trusted(address: Address | None) -> bool:
        return address is not None and any(address in net for net in trusted)

    current = parse_address(peer)
    if not is_trusted(current):
        return peer
    for node in reversed(_forwarded_chain(request.headers, settings)):
        hop = parse_address(node)
        if hop is None:
            return peer  # malformed or obfuscated: the proxy is all we know
        if not is_trusted(hop):
            return str(hop)
    return peer


def client_ip(request: web.Request) -> str:
    """The client's address: the peer, or behind a proxy named in ``[auth]
    trusted_proxies``, the address it forwarded (see ``client_address``)."""
    state = request.app.get(AUTH)
    if state is None:
        return request.remote or "unknown"
    return client_address(request, state.settings)


def error_response(exc: ApiError, details: list[dict[str, Any]] | None = None) -> web.Response:
    """The JSON body of an error."""
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if details:
        body["details"] = details
    status = status_of(exc)
    response = web.json_response({"error": body}, status=status)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_seconds)))
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="konak"'
    return response


class InvalidBody(BadRequest):
    """The JSON body does not match the request schema."""

    code = "invalid_body"

    def __init__(self, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.details = details


async def read_json(request: web.Request, model: type[M], limit: int | None = None) -> M:
    """Parse and validate a JSON body against ``model``, within the size limit (``[auth]
    max_body_bytes`` unless a route that takes batches gives its own)."""
    state = request.app[AUTH]
    limit = state.settings.max_body_bytes if limit is None else limit
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
            identity = state.authenticate(request.headers.get("Authorization", ""))
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
        status = status_of(exc)
        return error_response(exc, exc.details)
    except API_ERRORS as exc:
        status = status_of(exc)
        if state is not None and not proven:
            request.app[METRICS].http_refused.labels(exc.code).inc()
        return error_response(exc, getattr(exc, "details", None))
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
        request.app[METRICS].audit_suppressed.inc()


def tenant_state(request: web.Request) -> tuple[AuthState, str]:
    """The security core and the URL's tenant, which must exist (NotFound otherwise)."""
    state = request.app[AUTH]
    tenant = request.match_info["tenant"]
    state.users.require_tenant(tenant)
    return state, tenant

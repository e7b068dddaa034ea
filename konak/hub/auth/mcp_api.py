"""Admin endpoints for a tenant's MCP servers: list, add, replace, remove. Changes are
stored in the hub database and applied to the running MCP host at once. A server whose
destination or headers the outbound policy refuses is refused here at once, with the reason
(the MCP host checks again at every connect)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Final

from aiohttp import web

from konak.hub.auth.errors import ApiError, Conflict, NotEnabled, NotFound
from konak.hub.auth.http import AUTH, AuthState, note, read_json
from konak.hub.auth.rbac import Action, declare
from konak.hub.auth.schemas import McpServerBody, McpServerCreateBody
from konak.hub.mcp_registry import McpRegistry, McpRegistryError, StoredServer, now
from konak.hub.outbound import NameNotResolved, OutboundRefused, forbidden_headers

logger = logging.getLogger(__name__)

NO_CONTENT: Final = 204
_STATUS: Final[dict[str, type[ApiError]]] = {"conflict": Conflict, "not_found": NotFound}


def _parts(request: web.Request) -> tuple[AuthState, McpRegistry, str]:
    state = request.app[AUTH]
    if state.mcp_registry is None:
        raise NotEnabled("MCP servers cannot be managed on this hub")
    tenant = request.match_info["tenant"]
    if not state.users.tenant_exists(tenant):
        raise NotFound(f"no tenant {tenant!r}")
    return state, state.mcp_registry, tenant


def _view(state: AuthState, server: StoredServer) -> dict[str, Any]:
    view = server.public()
    status = state.mcp_status(server.tenant_id, server.name) if state.mcp_status else None
    view["connected"], view["tools"] = status if status is not None else (False, [])
    return view


def _configured(state: AuthState, tenant: str) -> list[dict[str, Any]]:
    """The tenant's servers from hub.toml: shown, never changed through the API."""
    return [
        {"name": s.name, "transport": s.transport, "source": "config"}
        for s in state.configured_mcp(tenant)
    ]


def _store(registry: McpRegistry, server: StoredServer, *, create: bool) -> None:
    try:
        registry.put(server, create=create)
    except McpRegistryError as exc:
        error = _STATUS.get(exc.code, ApiError)
        raise error(exc.message, code=exc.code) from exc


async def _check_destination(registry: McpRegistry, url: str, headers: Iterable[str]) -> None:
    """Refuse what the MCP host would refuse to connect to: a Host, hop-by-hop or forwarding
    header, or a URL whose host is (or resolves to) an address tenants may not reach."""
    refused = forbidden_headers(headers)
    if refused:
        raise ApiError(
            f"header(s) {', '.join(refused)} may not be set: the hub sets them or they are not "
            "the tenant's to send",
            code="invalid_header",
        )
    try:
        await registry.outbound().check_url(url)
    except NameNotResolved:
        pass  # nothing to judge yet: the check at connect time decides once it resolves
    except OutboundRefused as exc:
        raise ApiError(exc.message, code=exc.code) from exc


@declare(Action.MCP_READ)
async def list_servers(request: web.Request) -> web.Response:
    """The tenant's MCP servers (header values redacted) and whether each is connected."""
    state, registry, tenant = _parts(request)
    servers = [_view(state, s) for s in registry.of_tenant(tenant)]
    return web.json_response({"servers": servers, "configured": _configured(state, tenant)})


@declare(Action.MCP_READ)
async def get_server(request: web.Request) -> web.Response:
    """One MCP server of the tenant."""
    state, registry, tenant = _parts(request)
    server = registry.get(tenant, request.match_info["name"])
    if server is None:
        raise NotFound("no such mcp server in this tenant")
    return web.json_response(_view(state, server))


@declare(Action.MCP_WRITE)
async def create_server(request: web.Request) -> web.Response:
    """Add an MCP server over Streamable HTTP; the hub connects to it at once."""
    state, registry, tenant = _parts(request)
    body = await read_json(request, McpServerCreateBody)
    note(request, target=f"mcp:{body.name}")
    if any(s.name == body.name for s in state.configured_mcp(tenant)):
        raise Conflict(f"mcp server {body.name!r} is configured in hub.toml", code="conflict")
    if any(v is None for v in body.headers.values()):
        raise ApiError("a new server's header values must be given", code="invalid_body")
    await _check_destination(registry, body.url, body.headers)
    server = StoredServer(
        tenant_id=tenant,
        name=body.name,
        url=body.url,
        headers={k: v for k, v in body.headers.items() if v is not None},
        timeout_seconds=body.timeout_seconds,
        read_only_tools=tuple(body.read_only_tools),
        updated_at=now(),
    )
    async with registry.lock:
        _store(registry, server, create=True)
        await registry.changed()
    logger.info("tenant %s added mcp server %s", tenant, body.name)
    return web.json_response(_view(state, server), status=201)


@declare(Action.MCP_WRITE)
async def update_server(request: web.Request) -> web.Response:
    """Replace an MCP server's settings; a header given as null keeps its stored value."""
    state, registry, tenant = _parts(request)
    name = request.match_info["name"]
    note(request, target=f"mcp:{name}")
    body = await read_json(request, McpServerBody)
    await _check_destination(registry, body.url, body.headers)
    async with registry.lock:
        old = registry.get(tenant, name)
        if old is None:
            raise NotFound("no such mcp server in this tenant")
        headers: dict[str, str] = {}
        for key, value in body.headers.items():
            if value is not None:
                headers[key] = value
            elif key in old.headers:
                headers[key] = old.headers[key]
            else:
                raise ApiError(f"header {key!r} has no stored value to keep", code="invalid_body")
        server = StoredServer(
            tenant_id=tenant,
            name=name,
            url=body.url,
            headers=headers,
            timeout_seconds=body.timeout_seconds,
            read_only_tools=tuple(body.read_only_tools),
            updated_at=now(),
        )
        _store(registry, server, create=False)
        await registry.changed()
    logger.info("tenant %s changed mcp server %s", tenant, name)
    return web.json_response(_view(state, server))


@declare(Action.MCP_WRITE)
async def delete_server(request: web.Request) -> web.Response:
    """Remove an MCP server; the hub disconnects from it at once."""
    _, registry, tenant = _parts(request)
    name = request.match_info["name"]
    note(request, target=f"mcp:{name}")
    async with registry.lock:
        if not registry.delete(tenant, name):
            raise NotFound("no such mcp server in this tenant")
        await registry.changed()
    logger.info("tenant %s removed mcp server %s", tenant, name)
    return web.Response(status=NO_CONTENT)

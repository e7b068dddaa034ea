"""Admin endpoints for a tenant's MCP servers: list, add, replace, remove. Changes are
stored in the hub database and applied to the running MCP host at once. A server whose
destination or headers the outbound policy refuses is refused here at once, with the reason
(the MCP host checks again at every connect)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Final

from aiohttp import web

from konak.hub import resources
from konak.hub.api.errors import BadRequest
from konak.hub.api.http import declare, note, read_json
from konak.hub.api.schemas import McpServerBody, McpServerCreateBody
from konak.hub.breaker import CircuitState
from konak.hub.errors import HubError
from konak.hub.keys import AUTH, MCP, METRICS, SETTINGS
from konak.hub.mcp_host import McpConnection, describe
from konak.hub.mcp_registry import McpRegistry, McpRegistryError, StoredServer, now
from konak.hub.outbound import NameNotResolved, OutboundRefused, forbidden_headers
from konak.hub.security.errors import Conflict, NotFound
from konak.hub.security.rbac import Action
from konak.hub.settings import McpServerSettings

logger = logging.getLogger(__name__)

NO_CONTENT: Final = 204
_STATUS: Final[dict[str, type[HubError]]] = {"conflict": Conflict, "not_found": NotFound}


def _parts(request: web.Request) -> tuple[McpRegistry, str]:
    state = request.app[AUTH]
    tenant = request.match_info["tenant"]
    state.users.require_tenant(tenant)
    return state.mcp_registry, tenant


def _view(request: web.Request, server: StoredServer) -> dict[str, Any]:
    """A server as the API shows it, with whether the running MCP host is connected to it
    and its tools (not connected on an API without a host)."""
    view = server.public()
    host = request.app.get(MCP)
    conn = host.connection(server.tenant_id, server.name) if host is not None else None
    view["connected"], view["tools"] = (
        (conn.ready.is_set(), sorted(conn.tools)) if conn is not None else (False, [])
    )
    view.update(_health(request, server.tenant_id, server.name))
    return view


def _health(request: web.Request, tenant: str, name: str) -> dict[str, Any]:
    """The circuit of the running host's connection to a server and why it last failed."""
    host = request.app.get(MCP)
    conn = host.connection(tenant, name) if host is not None else None
    if conn is None:
        return {"circuit": CircuitState.CLOSED.value, "last_error": None}
    return {"circuit": conn.breaker.state.value, "last_error": conn.last_error}


def _configured(request: web.Request, tenant: str) -> list[McpServerSettings]:
    """The tenant's servers from hub.toml: shown, never changed through the API."""
    found = request.app[SETTINGS].tenants().get(tenant)
    return list(found.mcp_servers) if found is not None else []


def _store(registry: McpRegistry, server: StoredServer, *, create: bool) -> None:
    try:
        registry.put(server, create=create)
    except McpRegistryError as exc:
        error = _STATUS.get(exc.code, BadRequest)
        raise error(exc.message, code=exc.code) from exc


async def _check_destination(registry: McpRegistry, url: str, headers: Iterable[str]) -> None:
    """Refuse what the MCP host would refuse to connect to: a Host, hop-by-hop or forwarding
    header, or a URL whose host is (or resolves to) an address tenants may not reach."""
    refused = forbidden_headers(headers)
    if refused:
        raise BadRequest(
            f"header(s) {', '.join(refused)} may not be set: the hub sets them or they are not "
            "the tenant's to send",
            code="invalid_header",
        )
    try:
        await registry.outbound().check_url(url)
    except NameNotResolved:
        pass  # nothing to judge yet: the check at connect time decides once it resolves
    except OutboundRefused as exc:
        raise BadRequest(exc.message, code=exc.code) from exc


@declare(Action.MCP_READ)
async def list_servers(request: web.Request) -> web.Response:
    """The tenant's MCP servers (header values redacted) and whether each is connected."""
    registry, tenant = _parts(request)
    servers = [_view(request, s) for s in registry.of_tenant(tenant)]
    configured = [
        {
            "name": s.name,
            "transport": s.transport,
            "source": "config",
            **_health(request, tenant, s.name),
        }
        for s in _configured(request, tenant)
    ]
    return web.json_response({"servers": servers, "configured": configured})


@declare(Action.MCP_READ)
async def get_server(request: web.Request) -> web.Response:
    """One MCP server of the tenant."""
    registry, tenant = _parts(request)
    server = registry.get(tenant, request.match_info["name"])
    if server is None:
        raise NotFound("no such mcp server in this tenant")
    return web.json_response(_view(request, server))


@declare(Action.MCP_WRITE)
async def create_server(request: web.Request) -> web.Response:
    """Add an MCP server over Streamable HTTP; the hub connects to it at once."""
    registry, tenant = _parts(request)
    body = await read_json(request, McpServerCreateBody)
    note(request, target=f"mcp:{body.name}")
    if any(s.name == body.name for s in _configured(request, tenant)):
        raise Conflict(f"mcp server {body.name!r} is configured in hub.toml", code="conflict")
    if any(v is None for v in body.headers.values()):
        raise BadRequest("a new server's header values must be given", code="invalid_body")
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
    return web.json_response(_view(request, server), status=201)


@declare(Action.MCP_WRITE)
async def update_server(request: web.Request) -> web.Response:
    """Replace an MCP server's settings; a header given as null keeps its stored value."""
    registry, tenant = _parts(request)
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
                raise BadRequest(f"header {key!r} has no stored value to keep", code="invalid_body")
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
    return web.json_response(_view(request, server))


@declare(Action.MCP_WRITE)
async def delete_server(request: web.Request) -> web.Response:
    """Remove an MCP server; the hub disconnects from it at once."""
    registry, tenant = _parts(request)
    name = request.match_info["name"]
    note(request, target=f"mcp:{name}")
    async with registry.lock:
        if not registry.delete(tenant, name):
            raise NotFound("no such mcp server in this tenant")
        await registry.changed()
    logger.info("tenant %s removed mcp server %s", tenant, name)
    return web.Response(status=NO_CONTENT)


@declare(Action.MCP_WRITE)
async def test_server(request: web.Request) -> web.Response:
    """Connect to one of the tenant's MCP servers once, now, and list its tools."""
    _, tenant = _parts(request)
    name = request.match_info["name"]
    note(request, target=f"mcp:{name}")
    found = resources.mcp_tenants(request.app).get(tenant)
    settings = next((s for s in found.mcp_servers if s.name == name), None) if found else None
    if settings is None:
        raise NotFound("no such mcp server in this tenant")
    connection = McpConnection(tenant, settings, request.app[METRICS])
    try:
        tools = await asyncio.wait_for(connection.probe(), settings.timeout_seconds + 5)
    except asyncio.CancelledError:
        raise
    except OutboundRefused as exc:
        return web.json_response({"ok": False, "tools": [], "error": exc.message})
    except Exception as exc:  # any failure of the peer is the answer to "does it work"
        logger.info("mcp %s/%s: test connection failed: %s", tenant, name, describe(exc))
        return web.json_response({"ok": False, "tools": [], "error": describe(exc)})
    listed = [{"name": t.name, "description": t.description} for t in tools.values()]
    listed.sort(key=lambda t: str(t["name"]))
    return web.json_response({"ok": True, "tools": listed, "error": None})

"""konak-fleet: list devices, read a device's status, announce on a device or an area.

Served by the hub itself over Streamable HTTP. Every request needs
``Authorization: Bearer <token>``; the token's SHA-256 names the tenant (configured as
``fleet_token_sha256``), and every tool sees only that tenant's devices.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

# Imported at module level: the SDK evaluates tool signatures (``ctx: Context``) at runtime.
from mcp.server.mcpserver import Context, MCPServer

from konak.hub.errors import HubError
from konak.hub.fleet import NoTargets, announcements
from konak.hub.settings import FleetMcpSettings
from konak.hub.store import Store
from konak.protocol import Cmd

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

SERVER_NAME: Final = "konak-fleet"
Publish = Callable[[Cmd], Awaitable[None]]
TokenIndex = Callable[[], Mapping[str, str]]  # sha256 hex of a token -> tenant id


def token_tenant(authorization: str | None, tokens: Mapping[str, str]) -> str | None:
    """The tenant a bearer token belongs to, or None (constant-time comparison)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    digest = hashlib.sha256(authorization[7:].strip().encode()).hexdigest()
    found = None
    for known, tenant in tokens.items():
        if hmac.compare_digest(known, digest):
            found = tenant
    return found


class BearerAuth:
    """ASGI middleware: deny every HTTP request without a known bearer token."""

    def __init__(self, app: ASGIApp, tokens: TokenIndex) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            if token_tenant(headers.get("authorization"), self.tokens()) is None:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b'Bearer realm="konak-fleet"'),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"error":"unauthorized"}'})
                return
        await self.app(scope, receive, send)


def build_fleet_server(store: Store, publish: Publish, tokens: TokenIndex) -> MCPServer:
    """The konak-fleet MCP server over the hub's store and MQTT link."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    server: MCPServer = MCPServer(
        SERVER_NAME, instructions="Konak fleet: devices and announcements"
    )
    read_only = ToolAnnotations(readOnlyHint=True, destructiveHint=False)

    def tenant_of(ctx: Context) -> str:
        headers = ctx.headers or {}
        tenant = token_tenant(headers.get("authorization"), tokens())
        if tenant is None:
            raise ToolError("unauthorized")
        return tenant

    @server.tool(name="list_devices", annotations=read_only)
    def list_devices(ctx: Context, area: str | None = None) -> list[dict[str, Any]]:
        """List the tenant's devices (optionally of one area) with their state."""
        return [d.as_dict() for d in store.devices(tenant_of(ctx), area=area)]

    @server.tool(name="get_device_status", annotations=read_only)
    def get_device_status(device: str, ctx: Context) -> dict[str, Any]:
        """A device's status, identity and newest telemetry."""
        tenant = tenant_of(ctx)
        found = store.device(tenant, device)
        if found is None:
            raise ToolError(f"no device {device!r}")
        return {**found.as_dict(), "telemetry": store.telemetry(tenant, device, limit=1)}

    @server.tool(name="announce")
    async def announce(
        text: str, ctx: Context, device: str | None = None, area: str | None = None
    ) -> str:
        """Speak ``text`` on one device, or on every device of an area."""
        tenant = tenant_of(ctx)
        if (device is None) == (area is None):
            raise ToolError("give exactly one of 'device' or 'area'")
        try:
            cmds = announcements(store, tenant, text, device, area)
        except NoTargets as exc:
            raise ToolError(exc.message) from exc
        for cmd in cmds:
            await publish(cmd)
        return f"Announced on {len(cmds)} device(s)."

    return server


class _QuietServer:
    """uvicorn without its signal handlers (the hub owns signals)."""

    @staticmethod
    def make(app: Any, settings: FleetMcpSettings) -> uvicorn.Server:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Any:
                yield

        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_level="warning", lifespan="on"
        )
        return Server(config)


def _streamable_app(settings: FleetMcpSettings, servers: Mapping[str, MCPServer]) -> Starlette:
    """One Starlette app serving each server at its path (stateless Streamable HTTP), every
    server's session manager running for the app's lifespan."""
    from starlette.applications import Starlette

    apps = [
        server.streamable_http_app(
            streamable_http_path=path, stateless_http=True, host=settings.host
        )
        for path, server in servers.items()
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for sub in apps:
                await stack.enter_async_context(sub.router.lifespan_context(sub))
            yield

    return Starlette(routes=[r for sub in apps for r in sub.routes], lifespan=lifespan)


@contextlib.asynccontextmanager
async def serve_fleet(
    settings: FleetMcpSettings,
    server: MCPServer,
    tokens: TokenIndex,
    others: Mapping[str, MCPServer] | None = None,
) -> AsyncIterator[int]:
    """Serve konak-fleet over Streamable HTTP while the context is open; yields the port.
    ``others`` are the hub's other MCP servers by path, on the same listener and tokens."""
    import asyncio

    others = dict(others or {})
    if settings.path in others:
        raise HubError(
            f"fleet_mcp.path {settings.path} is taken by another of the hub's MCP servers",
            code="fleet_listen",
        )
    app = BearerAuth(_streamable_app(settings, {settings.path: server, **others}), tokens)
    # Bind here, so a taken port is an error we raise (uvicorn would call sys.exit).
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise HubError(
            f"konak-fleet could not listen on {settings.host}:{settings.port}: {exc.strerror}",
            code="fleet_listen",
        ) from exc
    port = int(sock.getsockname()[1])
    web = _QuietServer.make(app, settings)
    task = asyncio.create_task(web.serve(sockets=[sock]), name="konak-fleet")
    try:
        while not web.started:
            if task.done():
                task.result()
                raise HubError("konak-fleet stopped while starting", code="fleet_listen")
            await asyncio.sleep(0.01)  # readiness poll of the listener we just started
        for path in (settings.path, *others):
            logger.info("hub MCP server listening on http://%s:%d%s", settings.host, port, path)
        yield port
    finally:
        web.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()

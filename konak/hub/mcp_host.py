"""The MCP host: one supervised connection per configured server of each tenant.

Connections use the official ``mcp`` SDK (``mcp.Client`` over stdio or Streamable HTTP).
Each one lists its tools, pings to notice a dead peer, and reconnects with exponential
backoff. Calls carry a timeout; only read-only tools are retried; a circuit breaker per
server turns a hanging or crashing server into fast failures, and counts a result with
``isError`` as a failure too. Once the peer is found dead, the calls still in flight on it
fail at once and calls made before it is back fail without waiting; a good reconnect closes
the circuit. A server a tenant added is reached only under the outbound address policy
(``konak.hub.outbound``), checked and pinned at every connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from konak.hub.breaker import CircuitBreaker, CircuitState
from konak.hub.errors import ToolError
from konak.hub.metrics import HubMetrics
from konak.hub.outbound import OutboundRefused, forbidden_headers, pinned_http_client
from konak.hub.settings import McpServerSettings, TenantSettings

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult, Tool

logger = logging.getLogger(__name__)

PING_INTERVAL_SECONDS: Final = 10.0
# A ping is answered at once by a live peer, however long its tools take.
PING_TIMEOUT_SECONDS: Final = 5.0
MAX_TOOL_PAGES: Final = 20
# A server still making its first connection this long after start is not waited for.
STARTUP_GRACE_SECONDS: Final = 30.0
# Told (tenant, server) when a server's circuit opens (the fleet monitor's alert).
CircuitOpened = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class ToolRef:
    """Where a tool lives and whether it is safe to retry."""

    server: str
    name: str
    read_only: bool


class McpConnection:
    """A supervised connection to one MCP server of one tenant."""

    def __init__(
        self,
        tenant_id: str,
        settings: McpServerSettings,
        metrics: HubMetrics,
        on_circuit_open: CircuitOpened | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.settings = settings
        self.metrics = metrics
        self.on_circuit_open = on_circuit_open
        self.breaker = CircuitBreaker(settings.failure_threshold, settings.circuit_reset_seconds)
        self.tools: dict[str, Tool] = {}
        self.server_name: str | None = None  # what the server calls itself (initialize)
        self.ready = asyncio.Event()
        self._client: Client | None = None
        # Set when the current session ends: the calls in flight on it fail at once.
        self._lost = asyncio.Event()
        # Between a failed connection and the next attempt: calls fail without waiting.
        self._down = False
        # The peer was found dead (a call failed with a transport error): reconnect.
        self._dead = False
        # Wakes the watcher: reconnect when dead, otherwise ping now.
        self._check = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connects = 0
        self._changed = asyncio.Condition()  # connects, _client and _down
        self._http: Any = None  # the httpx client of a Streamable HTTP connection
        self.started_at = time.monotonic()
        self.last_error: str | None = None  # why the last connect or call failed, for admins

    @property
    def name(self) -> str:
        """The server's configured name."""
        return self.settings.name

    def start(self) -> None:
        """Start the supervisor task."""
        self.started_at = time.monotonic()
        self._task = asyncio.create_task(
            self._supervise(), name=f"mcp-{self.tenant_id}-{self.name}"
        )

    async def stop(self) -> None:
        """Disconnect and stop reconnecting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _make_client(self) -> Client:
        from mcp import Client, StdioServerParameters
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        s = self.settings
        if s.command is not None:
            params = StdioServerParameters(
                command=s.command, args=list(s.args), env=dict(s.env) or None, cwd=s.cwd
            )
            return Client(params, mode="legacy", cache=None)
        assert s.url is not None
        if s.outbound is not None:
            http = pinned_http_client(s.outbound, s.headers)
        else:
            http = create_mcp_http_client(headers=dict(s.headers))
        self._http = http  # ours to close: the SDK closes only clients it made
        return Client(streamable_http_client(s.url, http_client=http), mode="legacy", cache=None)

    async def _supervise(self) -> None:
        s = self.settings
        backoff = s.backoff_initial_seconds
        while True:
            self._dead = False
            self._check.clear()
            await self._set_down(False)
            lost = asyncio.Event()
            try:
                await self._check_outbound()
                async with self._make_client() as client:
                    self.tools = await asyncio.wait_for(self._list_tools(client), s.timeout_seconds)
                    self.server_name = client.server_info.name if client.server_info else None
                    # A good (re)connect: the failures that opened the circuit were the old
                    # peer's; waiting out circuit_reset_seconds would only fail this one.
                    self.breaker.reset()
                    self._publish_circuit()
                    async with self._changed:
                        self._client, self._lost = client, lost
                        self.ready.set()
                        self.connects += 1
                        self._changed.notify_all()
                    backoff = s.backoff_initial_seconds
                    logger.info(
                        "mcp %s/%s connected over %s: %d tools",
                        self.tenant_id,
                        self.name,
                        s.transport,
                        len(self.tools),
                    )
                    try:
                        await self._watch(client)
                    finally:
                        # Before the client closes (a stdio server may take seconds to stop).
                        await self._end_session(lost)
            except asyncio.CancelledError:
                raise
            except OutboundRefused as exc:
                self.last_error = f"not connecting: {exc.message}"
                logger.warning(
                    "mcp %s/%s: not connecting: %s; retrying in %.1fs",
                    self.tenant_id,
                    self.name,
                    exc.message,
                    backoff,
                )
            except Exception as exc:  # supervisor: any failure of the peer means reconnect
                self.last_error = f"connection failed: {describe(exc)}"
                logger.warning(
                    "mcp %s/%s: connection failed (%s); retrying in %.1fs",
                    self.tenant_id,
                    self.name,
                    type(exc).__name__,
                    backoff,
                )
            finally:
                await self._end_session(lost)
                http, self._http = self._http, None
                if http is not None:
                    await http.aclose()
            await asyncio.sleep(backoff)  # reconnect backoff, not coordination
            backoff = min(backoff * 2, s.backoff_max_seconds)

    async def _check_outbound(self) -> None:
        """Refuse a tenant's server with a forbidden header or destination, with the reason
        (the pinned client checks each connection again; this one names the cause)."""
        s = self.settings
        if s.outbound is None or s.url is None:
            return
        refused = forbidden_headers(s.headers)
        if refused:
            raise OutboundRefused(f"header(s) {', '.join(refused)} may not be set")
        await s.outbound.check_url(s.url)

    async def probe(self) -> dict[str, Tool]:
        """Connect once, outside the supervisor, and list the tools (an admin's "test the
        connection"); raises what the connection raises."""
        await self._check_outbound()
        try:
            async with self._make_client() as client:
                return await asyncio.wait_for(
                    self._list_tools(client), self.settings.timeout_seconds
                )
        finally:
            http, self._http = self._http, None
            if http is not None:
                await http.aclose()

    async def _list_tools(self, client: Client) -> dict[str, Tool]:
        tools: dict[str, Tool] = {}
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools.update((t.name, t) for t in page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        return tools

    async def _end_session(self, lost: asyncio.Event) -> None:
        """The session is over: fail its calls in flight, and new calls until the next one."""
        lost.set()
        self.ready.clear()
        async with self._changed:
            self._client = None
            self._down = True
            self._changed.notify_all()

    async def _set_down(self, down: bool) -> None:
        async with self._changed:
            self._down = down
            self._changed.notify_all()

    def _mark_dead(self) -> None:
        """The peer failed a call in a way only a dead peer does: reconnect."""
        self._dead = True
        self._check.set()

    async def _watch(self, client: Client) -> None:
        """Return when the peer is found dead: a failed call, or no answer to a ping (every
        ``PING_INTERVAL_SECONDS``, and at once when the circuit opens)."""
        ping_timeout_seconds = min(self.settings.timeout_seconds, PING_TIMEOUT_SECONDS)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._check.wait(), PING_INTERVAL_SECONDS)
            self._check.clear()
            if self._dead:
                logger.info("mcp %s/%s: reconnecting after a failure", self.tenant_id, self.name)
                return
            try:
                await asyncio.wait_for(client.send_ping(), ping_timeout_seconds)
            except TimeoutError:
                logger.warning(
                    "mcp %s/%s: no answer to a ping within %.1fs; reconnecting",
                    self.tenant_id,
                    self.name,
                    ping_timeout_seconds,
                )
                return

    async def wait_connects(self, count: int, timeout_seconds: float) -> None:
        """Wait until the server has been connected ``count`` times in all (reconnects)."""
        async with asyncio.timeout(timeout_seconds), self._changed:
            await self._changed.wait_for(lambda: self.connects >= count)

    def is_read_only(self, tool: str) -> bool:
        """Read-only by the server's annotation or by configuration."""
        if tool in self.settings.read_only_tools:
            return True
        found = self.tools.get(tool)
        return bool(found and found.annotations and found.annotations.read_only_hint)

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call a tool with the timeout, retries (read-only only) and circuit breaker."""
        s = self.settings
        attempts = 1 + (s.retries if self.is_read_only(tool) else 0)
        last: ToolError | None = None
        for attempt in range(attempts):
            trial = self.breaker.state is CircuitState.HALF_OPEN
            if not self.breaker.allow():
                self._publish_circuit()
                raise ToolError(f"circuit of mcp server {self.name!r} is open", code="circuit_open")
            started = time.monotonic()
            try:
                result = await asyncio.wait_for(self._call_once(tool, arguments), s.timeout_seconds)
            except asyncio.CancelledError:
                if trial:
                    self.breaker.record_abandoned()
                raise
            except TimeoutError as exc:
                last = ToolError(
                    f"{self.name}.{tool} timed out after {s.timeout_seconds}s", code="timeout"
                )
                last.__cause__ = exc
            except ToolError as exc:
                last = exc
            except Exception as exc:  # the SDK raises several types for a dead peer
                last = ToolError(f"{self.name}.{tool} failed: {type(exc).__name__}: {exc}")
                last.__cause__ = exc
                self._mark_dead()
            else:
                if result.is_error:
                    # The server answered, but could not do it. Counted against the circuit
                    # (a server that lost what it needs, as konak-home without its broker,
                    # answers every call so); not retried: it answered.
                    self._record_failure("tool_reported_error", started)
                    return result
                self.breaker.record_success()
                self._publish_circuit()
                self.metrics.tool_seconds.labels(self.name, "ok").observe(
                    time.monotonic() - started
                )
                return result
            self._record_failure(last.code, started)
            logger.warning(
                "mcp %s/%s: call %s failed (attempt %d/%d): %s",
                self.tenant_id,
                self.name,
                tool,
                attempt + 1,
                attempts,
                last.message,
            )
        assert last is not None
        raise last

    def _record_failure(self, code: str, started: float) -> None:
        self.last_error = f"a tool call failed: {code}"
        if self.breaker.record_failure():
            # Ask the peer at once whether it is alive: a hung one is then found dead now,
            # and its calls in flight fail now, not each at its own timeout.
            self._check.set()
            if self.on_circuit_open is not None:
                self.on_circuit_open(self.tenant_id, self.name)
        self._publish_circuit()
        self.metrics.tool_seconds.labels(self.name, code).observe(time.monotonic() - started)

    async def _call_once(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        """One call on the current session; fails at once when the session is lost."""
        async with self._changed:
            # While connecting: wait (bounded by the call's timeout). Known down: fail now.
            await self._changed.wait_for(lambda: self._client is not None or self._down)
            client, lost = self._client, self._lost
        if client is None:
            raise ToolError(f"mcp server {self.name!r} is not connected", code="not_connected")
        call = asyncio.ensure_future(client.call_tool(tool, arguments))
        call.add_done_callback(_retrieve)
        gone = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait((call, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            call.cancel()  # a no-op once it is done
        if call.done() and not call.cancelled():
            return call.result()
        raise ToolError(
            f"mcp server {self.name!r} was found dead during the call", code="server_dead"
        )

    def _publish_circuit(self) -> None:
        is_open = self.breaker.state is CircuitState.OPEN
        self.metrics.circuit_open.labels(self.tenant_id, self.name).set(1 if is_open else 0)


def describe(exc: BaseException) -> str:
    """One line about a failed connection: its kind and message, the first of a group's."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark an abandoned call's exception as seen (it was answered as ``server_dead``)."""
    if not task.cancelled():
        task.exception()


class McpHost:
    """All tenants' MCP connections; reconfigurable while running."""

    def __init__(self, metrics: HubMetrics, on_circuit_open: CircuitOpened | None = None) -> None:
        self.metrics = metrics
        self.on_circuit_open = on_circuit_open
        self._connections: dict[tuple[str, str], McpConnection] = {}

    async def configure(self, tenants: Mapping[str, TenantSettings]) -> None:
        """Connect new servers, reconnect changed ones, drop removed ones."""
        wanted = {
            (tid, server.name): server
            for tid, tenant in tenants.items()
            for server in tenant.mcp_servers
        }
        for key, conn in list(self._connections.items()):
            if wanted.get(key) != conn.settings:
                await conn.stop()
                del self._connections[key]
        for key, server in wanted.items():
            if key not in self._connections:
                conn = McpConnection(key[0], server, self.metrics, self.on_circuit_open)
                conn.start()
                self._connections[key] = conn

    async def close(self) -> None:
        """Disconnect everything."""
        await self.configure({})

    def connections(self, tenant_id: str) -> list[McpConnection]:
        """The tenant's connections in configuration order."""
        return [c for (tid, _), c in self._connections.items() if tid == tenant_id]

    def connection(self, tenant_id: str, server: str) -> McpConnection | None:
        """One connection of a tenant."""
        return self._connections.get((tenant_id, server))

    async def wait_ready(self, tenant_id: str, timeout_seconds: float) -> None:
        """Wait until every server of a tenant is connected (start-up, tests)."""
        async with asyncio.timeout(timeout_seconds):
            for conn in self.connections(tenant_id):
                await conn.ready.wait()

    async def wait_first_connect(self, tenant_id: str, timeout_seconds: float) -> bool:
        """Wait, bounded, for the tenant's servers that are still making their first connection
        (a hub that just started); returns whether there were any to wait for."""
        now = time.monotonic()
        pending = [
            c
            for c in self.connections(tenant_id)
            if c.connects == 0 and now - c.started_at < STARTUP_GRACE_SECONDS
        ]
        if not pending:
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_seconds):
                for conn in pending:
                    await conn.ready.wait()
        return True

    def find_tool(self, tenant_id: str, tool: str, server: str | None = None) -> ToolRef | None:
        """The first server of the tenant (or the named one) that offers ``tool``."""
        for conn in self.connections(tenant_id):
            if (server is None or conn.name == server) and tool in conn.tools:
                return ToolRef(conn.name, tool, conn.is_read_only(tool))
        return None

    async def call(
        self, tenant_id: str, server: str, tool: str, arguments: dict[str, Any]
    ) -> CallToolResult:
        """Call a tool on one of the tenant's servers."""
        conn = self.connection(tenant_id, server)
        if conn is None:
            raise ToolError(f"tenant has no mcp server {server!r}", code="unknown_server")
        return await conn.call(tool, arguments)

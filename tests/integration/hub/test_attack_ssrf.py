"""Attacks through the MCP servers a tenant admin adds (issue 12, rows 2 and 13), on a real hub
with two tenants on the real broker: tenant acme has a private MCP server on the hub's
loopback; globex's admin tries to make the hub connect to it (or to metadata endpoints, or
with a Host header of their choosing), and the request URLs of the HTTP client must not reach
the log."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web

from konak.devtools.mosquitto import Mosquitto
from konak.hub.keys import AUTH
from konak.hub.logs import configure_logging
from konak.hub.mcp_registry import StoredServer, now
from konak.hub.security.rbac import Role
from konak.hub.security.settings import AuthSettings, SigningKey
from konak.hub.settings import HubSettings, McpServerSettings, TenantSettings
from konak.protocol import Intent
from tests.integration.hub.conftest import WAIT_SECONDS, Device, RunningHub, hub_settings

pytestmark = pytest.mark.integration

PASSWORD = "violet-harbour-engine-42"
ACME_SECRET = "acme-private-echo"
# The loggers of the HTTP client stack the MCP SDK uses (restored after the logging test).
HTTP_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "mcp.client.streamable_http")


def two_tenants(broker: Mosquitto, tmp_path: Path, acme_url: str, **kw: Any) -> HubSettings:
    """acme with its private server (hub.toml, the operator's), globex with none; the API on."""
    base = hub_settings(broker, tmp_path)
    private = McpServerSettings(name="private", url=acme_url)
    return dataclasses.replace(
        base,
        tenants={
            "acme": dataclasses.replace(base.tenants["acme"], mcp_servers=(private,)),
            "globex": TenantSettings("globex"),
        },
        auth=AuthSettings(
            keys=(SigningKey("k1", "HS256", secret="integration-secret-" + "x" * 20),),
            active_kid="k1",
            argon2_time_cost=1,
            argon2_memory_kib=64,
        ),
        **kw,
    )


async def globex_admin(running: RunningHub, http: ClientSession, url: str) -> dict[str, str]:
    """Sign in as globex's admin (the attacker)."""
    users = running.runner.app[AUTH].users
    users.assign("globex", users.create_user("admin@globex.test", PASSWORD).user_id, Role.ADMIN)
    resp = await http.post(
        f"{url}/api/auth/login", json={"email": "admin@globex.test", "password": PASSWORD}
    )
    assert resp.status == 200
    return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


def globex_echo(turn_id: str) -> Intent:
    """A globex device asks for acme's tool by name."""
    return Intent(
        tenant="globex",
        device="lobby-pi",
        turn_id=turn_id,
        text=f"echo {ACME_SECRET}",
        intent="echo",
        slots={"message": ACME_SECRET},
    )


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[int, list[web.Request]]]:
    """A loopback HTTP server (another tenant's private service) recording its requests."""
    seen: list[web.Request] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(status=500)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield int(runner.addresses[0][1]), seen
    await runner.cleanup()


class _Waiter(logging.Handler):
    """Sets an event when a record whose message contains ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = asyncio.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.text in message:
            self.messages.append(message)
            self.seen.set()


async def test_another_tenants_loopback_server_is_refused_in_every_address_form(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Any,
    devices: Any,
    everything_http: tuple[str, subprocess.Popen[bytes]],
) -> None:
    acme_url, _ = everything_http
    port = acme_url.split(":")[2].split("/")[0]
    running: RunningHub = await hubs(two_tenants(broker, tmp_path, acme_url))
    url = f"http://127.0.0.1:{running.http_port}"
    lobby: Device = devices("lobby-pi", tenant="globex")
    forms = [
        f"http://127.0.0.1:{port}/mcp",
        f"http://localhost:{port}/mcp",
        f"http://0x7f000001:{port}/mcp",
        f"http://2130706433:{port}/mcp",
        f"http://017700000001:{port}/mcp",
        f"http://127.1:{port}/mcp",
        f"http://[::ffff:127.0.0.1]:{port}/mcp",
        f"http://[::1]:{port}/mcp",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1/mcp",
        "http://100.64.0.1/mcp",
    ]
    async with ClientSession() as http:
        admin = await globex_admin(running, http, url)
        answers = []
        for n, form in enumerate(forms):
            resp = await http.post(
                f"{url}/api/tenants/globex/mcp-servers",
                json={"name": f"stolen-{n}", "url": form},
                headers=admin,
            )
            answers.append((form, resp.status, (await resp.json()).get("error", {}).get("code")))
        listed = await (
            await http.get(f"{url}/api/tenants/globex/mcp-servers", headers=admin)
        ).json()
    assert running.hub.mcp is not None
    await lobby.send(globex_echo("t-ssrf-000001"))
    reply = await lobby.reply()

    assert answers == [(form, 400, "destination_not_allowed") for form in forms]
    assert listed["servers"] == []
    assert running.hub.mcp.connections("globex") == []
    assert running.hub.mcp.find_tool("globex", "echo") is None
    assert reply.outcome != "ok"
    assert ACME_SECRET not in reply.text


async def test_a_host_hop_by_hop_or_forwarding_header_is_refused_with_a_clear_400(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Any,
    everything_http: tuple[str, subprocess.Popen[bytes]],
) -> None:
    acme_url, _ = everything_http
    running: RunningHub = await hubs(two_tenants(broker, tmp_path, acme_url))
    url = f"http://127.0.0.1:{running.http_port}"
    public = "http://93.184.216.34/mcp"  # a public address: only the header is wrong
    async with ClientSession() as http:
        admin = await globex_admin(running, http, url)
        answers = []
        for header in ("Host", "transfer-encoding", "Connection", "X-Forwarded-For"):
            resp = await http.post(
                f"{url}/api/tenants/globex/mcp-servers",
                json={"name": "tools", "url": public, "headers": {header: "private.acme"}},
                headers=admin,
            )
            body = (await resp.json()).get("error", {})
            answers.append((resp.status, body.get("code"), header in body.get("message", "")))
        listed = await (
            await http.get(f"{url}/api/tenants/globex/mcp-servers", headers=admin)
        ).json()

    assert answers == [(400, "invalid_header", True)] * 4
    assert listed["servers"] == []


async def test_a_stored_server_on_loopback_is_refused_at_connect_and_never_reached(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Any,
    everything_http: tuple[str, subprocess.Popen[bytes]],
    recorder: tuple[int, list[web.Request]],
) -> None:
    """The check at connect time is the one that counts: a row stored before this check
    existed (or a name that resolved to a public address when it was registered)."""
    acme_url, _ = everything_http
    port, seen = recorder
    running: RunningHub = await hubs(two_tenants(broker, tmp_path, acme_url))
    registry = running.hub.mcp_registry
    assert registry is not None
    assert running.hub.mcp is not None
    waiter = _Waiter("globex/stolen")
    logging.getLogger("konak.hub.mcp_host").addHandler(waiter)
    try:
        stored = StoredServer(
            tenant_id="globex",
            name="stolen",
            url=f"http://127.0.0.1:{port}/mcp",
            headers={},
            timeout_seconds=5.0,
            read_only_tools=(),
            updated_at=now(),
        )
        async with registry.lock:
            registry.put(stored, create=True)
            await registry.changed()
        await asyncio.wait_for(waiter.seen.wait(), WAIT_SECONDS)
    finally:
        logging.getLogger("konak.hub.mcp_host").removeHandler(waiter)
    conn = running.hub.mcp.connection("globex", "stolen")

    assert seen == []
    assert conn is not None
    assert not conn.ready.is_set()
    assert conn.tools == {}
    assert "not connecting" in waiter.messages[0]
    assert "loopback" in waiter.messages[0]


async def test_the_operators_allow_list_admits_a_loopback_server_but_not_the_hubs_own_port(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Any,
    devices: Any,
    everything_http: tuple[str, subprocess.Popen[bytes]],
) -> None:
    from konak.hub.settings import McpSettings  # [mcp] is new: the other attacks run without

    acme_url, _ = everything_http
    allow = McpSettings(allow_hosts=("127.0.0.1",))
    running: RunningHub = await hubs(two_tenants(broker, tmp_path, acme_url, mcp=allow))
    url = f"http://127.0.0.1:{running.http_port}"
    assert running.hub.fleet_mcp_port is not None
    own = f"http://127.0.0.1:{running.hub.fleet_mcp_port}/mcp"
    async with ClientSession() as http:
        admin = await globex_admin(running, http, url)
        allowed = await http.post(
            f"{url}/api/tenants/globex/mcp-servers",
            json={"name": "tools", "url": acme_url},
            headers=admin,
        )
        hub_port = await http.post(
            f"{url}/api/tenants/globex/mcp-servers",
            json={"name": "fleet", "url": own},
            headers=admin,
        )
        refusal = (await hub_port.json())["error"]
    assert running.hub.mcp is not None
    conn = running.hub.mcp.connection("globex", "tools")
    assert conn is not None
    await asyncio.wait_for(conn.ready.wait(), WAIT_SECONDS)

    assert allowed.status == 201
    assert "echo" in conn.tools
    assert (hub_port.status, refusal["code"]) == (400, "destination_not_allowed")
    assert "own port" in refusal["message"]


@pytest.fixture
def hub_logging() -> Iterator[None]:
    """Let a test configure the hub's logging as `konak hub run` does, then put it back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in HTTP_LOGGERS}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


async def test_a_secret_in_an_mcp_servers_url_never_reaches_the_hubs_log(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Any,
    everything_http: tuple[str, subprocess.Popen[bytes]],
    hub_logging: None,
) -> None:
    acme_url, _ = everything_http
    secret = "query-secret-7d1f0c"
    log_file = tmp_path / "hub.jsonl"
    configure_logging("INFO", log_file)
    running: RunningHub = await hubs(two_tenants(broker, tmp_path, f"{acme_url}?token={secret}"))
    assert running.hub.mcp is not None
    assert running.hub.mcp.find_tool("acme", "echo") is not None  # requests were made
    await running.stop()

    log = log_file.read_text()
    assert "mcp acme/private connected" in log
    assert secret not in log

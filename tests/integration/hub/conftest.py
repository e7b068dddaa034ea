"""Fixtures for hub integration tests: a running hub on the real broker, devices, peers."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from konak.devtools.mosquitto import AclRule, Mosquitto, free_port
from konak.devtools.probe import MqttProbe
from konak.devtools.zigbee import ZigbeeLights
from konak.hub.app import create_app
from konak.hub.fleet import FleetMonitor
from konak.hub.ingest import Ingest
from konak.hub.keys import AUTH, FLEET, FLEET_MCP_PORT, INGEST, MCP, METRICS, SETTINGS, STORE
from konak.hub.mcp_host import McpHost
from konak.hub.mcp_registry import McpRegistry
from konak.hub.metrics import HubMetrics
from konak.hub.settings import (
    FleetMcpSettings,
    FleetSettings,
    HubSettings,
    McpServerSettings,
    MqttSettings,
    TenantSettings,
)
from konak.hub.store import Store
from konak.protocol import Intent, Reply, Status, decode_as, device_acl

REPO = Path(__file__).resolve().parents[3]
NODE_MODULES = REPO / "node_modules"
EVERYTHING = NODE_MODULES / "@modelcontextprotocol/server-everything/dist/index.js"
FILESYSTEM = NODE_MODULES / "@modelcontextprotocol/server-filesystem/dist/index.js"
FLEET_TOKEN = "fleet-token-for-tests-0123456789"
WAIT_SECONDS = 20.0
FAULT_PEER = Path(__file__).with_name("fault_peer.py")


def home_server(broker: Mosquitto, tmp_path: Path) -> McpServerSettings:
    """konak-home over stdio, configured with a kitchen light and a hall switch."""
    config = tmp_path / "home.toml"
    config.write_text(
        f"""
[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "{broker.admin.username}"
password_env = "KONAK_HOME_MQTT_PASSWORD"

[[entities]]
name = "kitchen light"
area = "kitchen"

[[entities]]
name = "hall switch"
kind = "switch"
area = "hall"
"""
    )
    return McpServerSettings(
        name="home",
        command=sys.executable,
        args=("-m", "konak.hub.mcp_servers.home", "--config", str(config)),
        env={"KONAK_HOME_MQTT_PASSWORD": broker.admin.password},
        timeout_seconds=10.0,
    )


def hub_settings(
    broker: Mosquitto, tmp_path: Path, servers: tuple[McpServerSettings, ...] = (), **kw: Any
) -> HubSettings:
    """Settings for a hub on ``broker`` with tenant ``acme``."""
    tenant = TenantSettings(
        "acme",
        mcp_servers=servers,
        bindings=kw.pop("bindings", {}),
        fleet_token_sha256=hashlib.sha256(FLEET_TOKEN.encode()).hexdigest(),
    )
    return HubSettings(
        database_path=tmp_path / "hub.sqlite3",
        http_port=0,
        mqtt=MqttSettings(
            host=broker.host,
            port=broker.port,
            username=broker.admin.username,
            password=broker.admin.password,
            client_id=kw.pop("client_id", "konak-hub-test"),
            reconnect_seconds=0.2,
        ),
        fleet=kw.pop("fleet", FleetSettings()),
        fleet_mcp=FleetMcpSettings(port=0),
        tenants={"acme": tenant},
        **kw,
    )


@dataclass
class HubParts:
    """A running hub's resources, read through their AppKeys."""

    app: web.Application

    @property
    def settings(self) -> HubSettings:
        """The settings it runs with now."""
        return self.app[SETTINGS].current

    @property
    def metrics(self) -> HubMetrics:
        """Its metrics."""
        return self.app[METRICS]

    @property
    def store(self) -> Store:
        """Its store."""
        return self.app[STORE]

    @property
    def mcp(self) -> McpHost:
        """Its MCP host."""
        return self.app[MCP]

    @property
    def fleet(self) -> FleetMonitor:
        """Its fleet monitor."""
        return self.app[FLEET]

    @property
    def ingest(self) -> Ingest:
        """Its MQTT ingest."""
        return self.app[INGEST]

    @property
    def mcp_registry(self) -> McpRegistry | None:
        """The MCP servers tenants added (None without the API)."""
        auth = self.app.get(AUTH)
        return auth.mcp_registry if auth is not None else None

    @property
    def fleet_mcp_port(self) -> int | None:
        """The port konak-fleet listens on, when it serves."""
        return self.app.get(FLEET_MCP_PORT)


@dataclass
class RunningHub:
    """A hub running in the test's event loop."""

    hub: HubParts
    runner: web.AppRunner

    @property
    def http_port(self) -> int:
        """The port of /metrics and /healthz."""
        return int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop the hub (as on SIGTERM)."""
        await self.runner.cleanup()


async def start_hub(settings: HubSettings) -> RunningHub:
    """Start a hub and wait until it is connected to the broker and its MCP servers."""
    app = create_app(settings)
    runner = web.AppRunner(app)
    try:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        await asyncio.wait_for(app[INGEST].connected.wait(), WAIT_SECONDS)
        for tenant in settings.tenants:
            await app[MCP].wait_ready(tenant, WAIT_SECONDS)
    except BaseException:
        await runner.cleanup()
        raise
    return RunningHub(HubParts(app), runner)


@pytest.fixture
async def hubs() -> AsyncIterator[Callable[[HubSettings], Any]]:
    """Start hubs with ``await hubs(settings)``; all are stopped after the test."""
    running: list[RunningHub] = []

    async def start(settings: HubSettings) -> RunningHub:
        hub = await start_hub(settings)
        running.append(hub)
        return hub

    yield start
    for hub in running:
        await hub.stop()


class Device:
    """A test device speaking the contract with its own ACL-restricted broker login."""

    def __init__(self, broker: Mosquitto, tenant: str, device: str) -> None:
        self.tenant, self.device = tenant, device
        creds = broker.add_user(
            f"{tenant}-{device}",
            acl=[AclRule(access, topic) for access, topic in device_acl(tenant, device)],
        )
        self.probe = MqttProbe(broker.host, broker.port, creds).connect()
        self.probe.subscribe(Reply(tenant=tenant, device=device, turn_id="t-00000000").topic)

    async def send(self, msg: Intent | Status) -> None:
        """Publish a message on its topic (off the event loop: the probe blocks)."""
        qos = 1
        await asyncio.to_thread(self.probe.publish, msg.topic, msg.to_payload(), qos, False)

    async def online(self, area: str | None = None, name: str | None = None) -> None:
        """Announce itself online."""
        await self.send(
            Status(tenant=self.tenant, device=self.device, state="online", area=area, name=name)
        )

    async def reply(self, timeout: float = WAIT_SECONDS) -> Reply:
        """The next reply received."""
        got = await asyncio.to_thread(self.probe.next, timeout)
        return decode_as(Reply, got.payload, topic=got.topic)

    def close(self) -> None:
        """Disconnect."""
        self.probe.close()


@pytest.fixture
def devices(broker: Mosquitto) -> Iterator[Callable[..., Device]]:
    """Create test devices of tenant ``acme``; all are disconnected after the test."""
    made: list[Device] = []

    def make(device: str, tenant: str = "acme") -> Device:
        d = Device(broker, tenant, device)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def intent(device: str, turn_id: str, name: str | None, **kw: Any) -> Intent:
    """An intent of tenant acme."""
    return Intent(
        tenant="acme",
        device=device,
        turn_id=turn_id,
        text=kw.pop("text", "turn on the kitchen light"),
        intent=name,
        **kw,
    )


def start_everything_http(port: int) -> subprocess.Popen[bytes]:
    """server-everything over Streamable HTTP on ``port``, once it listens."""
    proc = subprocess.Popen(
        ["node", str(EVERYTHING), "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stderr is not None
    # Wait for its "listening on <port>" line rather than sleeping.
    for _ in range(50):
        line = proc.stderr.readline().decode()
        if str(port) in line or not line:
            break
    return proc


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Kill a peer started by a test and close its pipe."""
    proc.kill()
    proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


@pytest.fixture
def everything_http() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """server-everything over Streamable HTTP on a free port: (url, process)."""
    port = free_port()
    proc = start_everything_http(port)
    yield f"http://127.0.0.1:{port}/mcp", proc
    stop_process(proc)


def everything_stdio(name: str = "everything", **kw: Any) -> McpServerSettings:
    """server-everything over stdio."""
    return McpServerSettings(name=name, command="node", args=(str(EVERYTHING), "stdio"), **kw)


@pytest.fixture
def lights(broker: Mosquitto) -> Iterator[ZigbeeLights]:
    """Simulated Zigbee2MQTT lights that confirm each command (konak-home waits for that)."""
    sim = ZigbeeLights(broker).start()
    yield sim
    sim.close()


def fault_peer(pids: Path, name: str = "peer", **kw: Any) -> McpServerSettings:
    """A small MCP server over stdio (``echo``, and ``hang`` that never answers) that appends
    its pid to ``pids`` at each start."""
    return McpServerSettings(
        name=name,
        command=sys.executable,
        args=(str(FAULT_PEER),),
        env={"KONAK_TEST_PIDS": str(pids)},
        **kw,
    )

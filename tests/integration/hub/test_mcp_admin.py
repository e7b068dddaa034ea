"""A tenant admin manages the tenant's MCP servers through the API on a running hub, against
server-everything over Streamable HTTP: applied without a restart, kept across one. The server
runs on loopback, which tenants reach only because the operator allows it ([mcp] allow_hosts)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from konak.devtools.mosquitto import Mosquitto
from konak.hub.keys import AUTH
from konak.hub.security.rbac import Role
from konak.hub.security.settings import AuthSettings, SigningKey
from konak.hub.settings import HubSettings, McpSettings
from tests.integration.hub.conftest import WAIT_SECONDS, Device, RunningHub, hub_settings, intent

pytestmark = pytest.mark.integration

PASSWORD = "violet-harbour-engine-42"
SECRET = "Bearer tenant-secret-for-everything"


def settings(broker: Mosquitto, tmp_path: Path) -> HubSettings:
    return dataclasses.replace(
        hub_settings(broker, tmp_path),
        auth=AuthSettings(
            keys=(SigningKey("k1", "HS256", secret="integration-secret-" + "x" * 20),),
            active_kid="k1",
            argon2_time_cost=1,
            argon2_memory_kib=64,
        ),
        mcp=McpSettings(allow_hosts=("127.0.0.1",)),
    )


async def admin_headers(http: ClientSession, url: str) -> dict[str, str]:
    resp = await http.post(
        f"{url}/api/auth/login", json={"email": "admin@acme.test", "password": PASSWORD}
    )
    assert resp.status == 200
    return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


async def connected(running: RunningHub, name: str) -> None:
    assert running.hub.mcp is not None
    conn = running.hub.mcp.connection("acme", name)
    assert conn is not None, f"the hub has no connection to {name}"
    await asyncio.wait_for(conn.ready.wait(), WAIT_SECONDS)


async def test_a_server_added_through_the_api_serves_intents_at_once_and_after_a_restart(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Any,
    devices: Any,
    everything_http: tuple[str, subprocess.Popen[bytes]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    mcp_url, _ = everything_http
    running: RunningHub = await hubs(settings(broker, tmp_path))
    users = running.runner.app[AUTH].users
    users.assign("acme", users.create_user("admin@acme.test", PASSWORD).user_id, Role.ADMIN)
    url = f"http://127.0.0.1:{running.http_port}"
    pi: Device = devices("office-pi")
    async with ClientSession() as http:
        admin = await admin_headers(http, url)
        created = await http.post(
            f"{url}/api/tenants/acme/mcp-servers",
            json={"name": "everything", "url": mcp_url, "headers": {"Authorization": SECRET}},
            headers=admin,
        )
        await connected(running, "everything")
        listed = await (await http.get(f"{url}/api/tenants/acme/mcp-servers", headers=admin)).json()
        await pi.send(intent("office-pi", "t-api-000001", "echo", slots={"message": "added"}))
        first = await pi.reply()
    await running.stop()

    again: RunningHub = await hubs(settings(broker, tmp_path))
    await connected(again, "everything")
    await pi.send(intent("office-pi", "t-api-000002", "echo", slots={"message": "restarted"}))
    second = await pi.reply()

    assert created.status == 201
    (server,) = listed["servers"]
    assert server["connected"] is True
    assert "echo" in server["tools"]
    assert server["headers"] == {"Authorization": "********"}
    assert (first.outcome, first.text) == ("ok", "Echo: added")
    assert (second.outcome, second.text) == ("ok", "Echo: restarted")
    assert "tenant-secret" not in caplog.text


async def test_changing_and_removing_a_server_reconnects_and_disconnects_the_running_hub(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Any,
    devices: Any,
    everything_http: tuple[str, subprocess.Popen[bytes]],
) -> None:
    mcp_url, _ = everything_http
    running: RunningHub = await hubs(settings(broker, tmp_path))
    users = running.runner.app[AUTH].users
    users.assign("acme", users.create_user("admin@acme.test", PASSWORD).user_id, Role.ADMIN)
    url = f"http://127.0.0.1:{running.http_port}"
    assert running.hub.mcp is not None
    pi: Device = devices("office-pi")
    async with ClientSession() as http:
        admin = await admin_headers(http, url)
        await http.post(
            f"{url}/api/tenants/acme/mcp-servers",
            json={"name": "everything", "url": mcp_url},
            headers=admin,
        )
        await connected(running, "everything")
        before = running.hub.mcp.connection("acme", "everything")
        changed = await http.put(
            f"{url}/api/tenants/acme/mcp-servers/everything",
            json={"url": mcp_url, "timeout_seconds": 3},
            headers=admin,
        )
        await connected(running, "everything")
        after = running.hub.mcp.connection("acme", "everything")
        removed = await http.delete(f"{url}/api/tenants/acme/mcp-servers/everything", headers=admin)
        gone = running.hub.mcp.connection("acme", "everything")
        await pi.send(intent("office-pi", "t-api-000003", "echo", slots={"message": "x"}))
        reply = await pi.reply()

    assert changed.status == 200
    assert after is not before
    assert after is not None
    assert after.settings.timeout_seconds == 3
    assert removed.status == 204
    assert gone is None
    assert reply.outcome != "ok"

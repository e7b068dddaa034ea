"""The console's API on a running hub with the real broker: devices that speak the contract
appear in the fleet and on the event stream, their turns in the history, an announcement
reaches a device, and an offline alert is kept and marked read."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, ClientSession

from konak.devtools.mosquitto import Mosquitto
from konak.hub.keys import AUTH
from konak.hub.security.rbac import Role
from konak.hub.security.settings import AuthSettings, SigningKey
from konak.hub.settings import FleetSettings, HubSettings
from konak.protocol import Cmd, Kind, Status, build_topic, decode_as
from tests.integration.hub.conftest import WAIT_SECONDS, Device, RunningHub, hub_settings, intent

pytestmark = pytest.mark.integration

PASSWORD = "violet-harbour-engine-42"
T = "/api/tenants/acme"


def settings(broker: Mosquitto, tmp_path: Path, **kw: Any) -> HubSettings:
    return dataclasses.replace(
        hub_settings(broker, tmp_path, **kw),
        auth=AuthSettings(
            keys=(SigningKey("k1", "HS256", secret="integration-secret-" + "x" * 20),),
            active_kid="k1",
            argon2_time_cost=1,
            argon2_memory_kib=64,
        ),
    )


@dataclasses.dataclass
class Console:
    """An HTTP client of a running hub, signed in as acme's member."""

    http: ClientSession
    url: str
    headers: dict[str, str]
    streams: list[ClientResponse] = dataclasses.field(default_factory=list)

    async def get(self, path: str) -> Any:
        async with self.http.get(f"{self.url}{T}{path}", headers=self.headers) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def post(self, path: str, body: Any = None) -> Any:
        async with self.http.post(f"{self.url}{T}{path}", json=body, headers=self.headers) as resp:
            assert resp.status in (200, 204), await resp.text()
            return await resp.json() if resp.status == 200 else None

    async def stream(self) -> ClientResponse:
        resp = await self.http.get(f"{self.url}{T}/events", headers=self.headers)
        self.streams.append(resp)
        assert resp.status == 200
        return resp


async def next_event(
    resp: ClientResponse, name: str, until: Callable[[Any], bool] = lambda data: True
) -> Any:
    """The data of the stream's next event called ``name`` for which ``until`` holds
    (others are skipped)."""
    current = ""
    async with asyncio.timeout(WAIT_SECONDS):
        while line := (await resp.content.readline()).decode():
            if line.startswith("event: "):
                current = line[7:].strip()
            elif line.startswith("data: ") and current == name:
                data = json.loads(line[6:])
                if until(data):
                    return data
    raise AssertionError(f"the stream ended before a {name} event")


@pytest.fixture
async def console_of(hubs: Any) -> AsyncIterator[Any]:
    """Start a hub with ``await console_of(settings)``: (hub, Console signed in as a member)."""
    consoles: list[Console] = []
    async with ClientSession() as http:

        async def start(hub_settings: HubSettings) -> tuple[RunningHub, Console]:
            running: RunningHub = await hubs(hub_settings)
            users = running.runner.app[AUTH].users
            user = users.create_user("member@acme.test", PASSWORD)
            users.assign("acme", user.user_id, Role.MEMBER)
            url = f"http://127.0.0.1:{running.http_port}"
            login = await http.post(
                f"{url}/api/auth/login", json={"email": "member@acme.test", "password": PASSWORD}
            )
            assert login.status == 200
            token = (await login.json())["access_token"]
            consoles.append(Console(http, url, {"Authorization": f"Bearer {token}"}))
            return running, consoles[-1]

        yield start
        for console in consoles:
            for stream in console.streams:
                stream.close()


async def test_an_unenrolled_device_appears_live_and_its_finished_turn_in_the_history(
    broker: Mosquitto, tmp_path: Path, console_of: Any, devices: Any
) -> None:
    running, console = await console_of(settings(broker, tmp_path))
    running.runner.app[AUTH].claims.record("acme", "hall-pi", "Hall", "hall", "acme.hall-pi")
    stream = await console.stream()
    pi: Device = devices("kitchen-pi")

    await pi.send(Status(tenant="acme", device="kitchen-pi", state="online", area="kitchen",
                         config_revision=2))  # fmt: skip
    seen = await next_event(stream, "device")
    fleet = await console.get("/fleet")
    await pi.send(intent("kitchen-pi", "t-console-01", "NoSuchTool", speech_ended_at=1.0))
    reply = await pi.reply()
    turn = await next_event(stream, "turn")
    history = await console.get("/turns?device=kitchen-pi")
    await pi.send(Status(tenant="acme", device="kitchen-pi", state="offline"))
    gone = await next_event(stream, "device")

    assert (seen["device"], seen["state"], seen["enrolled"], seen["config_revision"]) == (
        "kitchen-pi",
        "online",
        False,
        2,
    )
    assert [(d["device"], d["state"]) for d in fleet["devices"]] == [
        ("hall-pi", "never_seen"),
        ("kitchen-pi", "online"),
    ]
    assert (turn["turn_id"], turn["outcome"], turn["reply_text"]) == (
        "t-console-01",
        reply.outcome,
        reply.text,
    )
    assert turn["text"] == "turn on the kitchen light"
    assert turn["latency_ms"] > 0
    assert history["turns"] == [turn]
    assert (gone["state"], gone["last_turn"]["turn_id"]) == ("offline", "t-console-01")


async def test_an_announcement_reaches_the_devices_command_topic(
    broker: Mosquitto, tmp_path: Path, console_of: Any, devices: Any
) -> None:
    _, console = await console_of(settings(broker, tmp_path))
    stream = await console.stream()
    pi: Device = devices("hall-pi")
    pi.probe.subscribe(build_topic("acme", "hall-pi", Kind.CMD))
    await pi.online(area="hall")
    await next_event(stream, "device")

    answer = await console.post("/announce", {"text": "Dinner is ready", "area": "hall"})
    got = await asyncio.to_thread(pi.probe.next, WAIT_SECONDS)
    cmd = decode_as(Cmd, got.payload, topic=got.topic)

    assert answer == {"sent": ["hall-pi"]}
    assert (cmd.action, cmd.text) == ("announce", "Dinner is ready")


async def test_an_offline_alert_is_kept_streamed_and_marked_read(
    broker: Mosquitto, tmp_path: Path, console_of: Any, devices: Any
) -> None:
    fleet = FleetSettings(offline_alert_seconds=0.2, check_interval_seconds=0.1)
    _, console = await console_of(settings(broker, tmp_path, fleet=fleet))
    stream = await console.stream()
    pi: Device = devices("porch-pi")
    await pi.online()
    await pi.send(Status(tenant="acme", device="porch-pi", state="offline"))

    alert = await next_event(stream, "alert")
    listed = await console.get("/alerts?unread=true")
    await console.post(f"/alerts/{alert['id']}/read")
    after = await console.get("/alerts")

    assert (alert["kind"], alert["device"], alert["read"]) == ("device_offline", "porch-pi", False)
    assert listed == {"alerts": [alert], "unread": 1}
    assert after == {"alerts": [{**alert, "read": True}], "unread": 0}


async def test_update_models_reaches_the_devices_of_an_area_and_a_member_may_not_send_it(
    broker: Mosquitto, tmp_path: Path, console_of: Any, devices: Any
) -> None:
    running, member = await console_of(settings(broker, tmp_path))
    users = running.runner.app[AUTH].users
    users.assign("acme", users.create_user("ops@acme.test", PASSWORD).user_id, Role.OPERATOR)
    login = await member.http.post(
        f"{member.url}/api/auth/login", json={"email": "ops@acme.test", "password": PASSWORD}
    )
    operator = Console(
        member.http, member.url, {"Authorization": f"Bearer {(await login.json())['access_token']}"}
    )
    pi: Device = devices("hall-pi")
    pi.probe.subscribe(build_topic("acme", "hall-pi", Kind.CMD))
    await pi.online(area="hall")
    body = {"area": "hall", "model_set": "default"}

    async with member.http.post(
        f"{member.url}{T}/update-models", json=body, headers=member.headers
    ) as refused:
        assert refused.status == 403
    async with operator.http.post(
        f"{operator.url}{T}/update-models", json=body, headers=operator.headers
    ) as resp:
        assert resp.status == 202, await resp.text()
        answer = await resp.json()
    got = await asyncio.to_thread(pi.probe.next, WAIT_SECONDS)
    cmd = decode_as(Cmd, got.payload, topic=got.topic)
    async with operator.http.post(
        f"{operator.url}{T}/update-models", json={"device": "nowhere-pi"}, headers=operator.headers
    ) as missing:
        assert missing.status == 404

    assert answer == {"sent": ["hall-pi"], "commands": {"hall-pi": cmd.command_id}}
    assert (cmd.action, cmd.model_set) == ("update_models", "default")

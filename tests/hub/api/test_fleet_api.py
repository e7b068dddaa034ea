"""The console's fleet, turns, announce, events and alerts routes on a whole hub app (real
SQLite, real HTTP; no broker: ingest keeps retrying in the background), attacked from
another tenant and used by a readonly user."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from konak.devtools.mosquitto import free_port
from konak.hub import ingest as ingest_module
from konak.hub.api import events as events_module
from konak.hub.app import create_app
from konak.hub.events import MAX_SUBSCRIBERS_PER_USER
from konak.hub.keys import AUTH, FLEET, LIVE, MCP, STORE, TURNS
from konak.hub.security.rbac import Role
from konak.hub.settings import FleetMcpSettings, HubSettings, MqttSettings, TenantSettings
from konak.protocol import Intent, Status, Telemetry
from tests.hub.api.conftest import PASSWORD, auth_settings

T = "/api/tenants/acme"


@dataclass
class Console:
    """A whole hub app with users of every acme role and an admin of globex."""

    app: web.Application
    client: TestClient[web.Request, web.Application]

    async def headers(self, email: str) -> dict[str, str]:
        resp = await self.client.post(
            "/api/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}

    async def get(self, path: str, email: str, status: int = 200) -> Any:
        resp = await self.client.get(path, headers=await self.headers(email))
        assert resp.status == status, await resp.text()
        return await resp.json() if resp.content_type == "application/json" else None

    async def post(self, path: str, email: str, body: Any = None, status: int = 200) -> Any:
        resp = await self.client.post(path, json=body, headers=await self.headers(email))
        assert resp.status == status, await resp.text()
        return await resp.json() if resp.content_type == "application/json" else None

    def status(self, device: str, state: str = "online", **kw: Any) -> None:
        self.app[FLEET].on_status(Status(tenant="acme", device=device, state=state, **kw))  # type: ignore[arg-type]

    def turn(self, device: str, turn_id: str, text: str = "turn on the light") -> None:
        store = self.app[STORE]
        intent = Intent(
            tenant="acme",
            device=device,
            turn_id=turn_id,
            text=text,
            intent="HassTurnOn",
            speech_ended_at=time.time() - 0.25,
        )
        store.claim_turn("acme", turn_id, device, intent)
        store.finish_turn("acme", turn_id, "ok", "Done.")
        store.replied("acme", turn_id)
        self.app[LIVE].turn_finished("acme", turn_id)


async def start_console(tmp_path: Path, **auth: Any) -> tuple[Console, TestServer]:
    settings = HubSettings(
        database_path=tmp_path / "hub.sqlite3",
        mqtt=MqttSettings(host="127.0.0.1", port=free_port(), reconnect_seconds=5.0),
        fleet_mcp=FleetMcpSettings(port=0),
        tenants={t: TenantSettings(t) for t in ("acme", "globex")},
        auth=auth_settings(**auth),
    )
    app = create_app(settings)
    users = app[AUTH].users
    for role in Role:
        users.assign("acme", users.create_user(f"{role.value}@acme.test", PASSWORD).user_id, role)
    users.assign("globex", users.create_user("admin@globex.test", PASSWORD).user_id, Role.ADMIN)
    server = TestServer(app)
    client = TestClient(server)
    await client.start_server()
    return Console(app, client), server


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    running, _ = await start_console(tmp_path)
    yield running
    await running.client.close()


async def next_event(resp: ClientResponse, timeout: float = 5.0) -> tuple[str, Any]:
    """The next event of a stream (comments and ``retry:`` skipped); ("", None) at its end."""
    name = ""
    async with asyncio.timeout(timeout):
        while True:
            line = (await resp.content.readline()).decode()
            if not line:
                return "", None
            if line.startswith("event: "):
                name = line[7:].strip()
            elif line.startswith("data: "):
                return name, json.loads(line[6:])


async def test_the_fleet_lists_seen_and_enrolled_devices_and_transcripts_only_for_members(
    console: Console,
) -> None:
    console.app[AUTH].claims.record("acme", "hall-pi", "Hall", "hall", "acme.hall-pi")
    console.status("kitchen-pi", area="kitchen", config_revision=4)
    console.turn("kitchen-pi", "t-00000001")

    member = await console.get(f"{T}/fleet", "member@acme.test")
    readonly = await console.get(f"{T}/fleet", "readonly@acme.test")
    online = await console.get(f"{T}/fleet?state=online&area=kitchen", "member@acme.test")
    device = await console.get(f"{T}/fleet/kitchen-pi", "readonly@acme.test")

    assert [(d["device"], d["state"], d["enrolled"]) for d in member["devices"]] == [
        ("hall-pi", "never_seen", True),
        ("kitchen-pi", "online", False),
    ]
    last_turn = member["devices"][1]["last_turn"]
    assert (last_turn["text"], last_turn["outcome"]) == ("turn on the light", "ok")
    assert 200 < last_turn["latency_ms"] < 5000
    assert member["devices"][1]["config_revision"] == 4
    assert all("last_turn" not in d for d in readonly["devices"])
    assert [d["device"] for d in online["devices"]] == ["kitchen-pi"]
    assert "last_turn" not in device
    assert device["area"] == "kitchen"


async def test_telemetry_and_turns_page_oldest_and_newest_first(console: Console) -> None:
    console.status("pi")
    for n in range(3):
        sample = Telemetry(
            tenant="acme",
            device="pi",
            uptime_seconds=n,
            cpu_percent=n,
            rss_bytes=1,
            stage_latency_ms={"stt": 10.0 * n},
        )
        console.app[FLEET].on_telemetry(sample, now=100.0 + n)
        console.turn("pi", f"t-0000000{n}", text=f"turn {n}")

    samples = (await console.get(f"{T}/fleet/pi/telemetry?limit=2", "readonly@acme.test"))[
        "samples"
    ]
    first = await console.get(f"{T}/turns?limit=2&device=pi", "member@acme.test")
    rest = await console.get(f"{T}/turns?limit=2&before={first['next_before']}", "member@acme.test")

    assert [(s["received_at"], s["stage_latency_ms"]) for s in samples] == [
        (101.0, {"stt": 10.0}),
        (102.0, {"stt": 20.0}),
    ]
    assert [t["text"] for t in first["turns"] + rest["turns"]] == ["turn 2", "turn 1", "turn 0"]
    assert rest["next_before"] is None


async def test_a_readonly_user_reads_no_transcripts_and_cannot_announce(console: Console) -> None:
    console.status("pi")

    refused = await console.get(f"{T}/turns", "readonly@acme.test", status=403)
    announce = await console.post(
        f"{T}/announce", "readonly@acme.test", {"text": "Hello", "device": "pi"}, status=403
    )

    assert refused["error"]["code"] == announce["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/fleet"),
        ("GET", "/fleet/pi"),
        ("GET", "/fleet/pi/telemetry"),
        ("GET", "/turns"),
        ("POST", "/announce"),
        ("GET", "/events"),
        ("GET", "/alerts"),
        ("POST", "/alerts/1/read"),
        ("POST", "/alerts/read-all"),
    ],
)
async def test_another_tenants_admin_finds_no_tenant_behind_any_console_route(
    console: Console, method: str, path: str
) -> None:
    console.status("pi")
    console.app[FLEET].tenant_alert("acme", "quota_reached", "intents_per_minute", "reached")
    headers = await console.headers("admin@globex.test")

    resp = await console.client.request(
        method, f"{T}{path}", json={"text": "Hi", "device": "pi"}, headers=headers
    )

    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_another_tenants_devices_turns_and_alerts_are_not_in_ones_own_tenant(
    console: Console,
) -> None:
    console.status("pi")
    console.turn("pi", "t-00000001")
    [alert] = [console.app[FLEET].tenant_alert("acme", "quota_reached", "q", "reached")]
    assert alert
    theirs = "/api/tenants/globex"

    fleet = await console.get(f"{theirs}/fleet", "admin@globex.test")
    turns = await console.get(f"{theirs}/turns", "admin@globex.test")
    alerts = await console.get(f"{theirs}/alerts", "admin@globex.test")
    device = await console.get(f"{theirs}/fleet/pi", "admin@globex.test", status=404)
    await console.post(f"{theirs}/alerts/1/read", "admin@globex.test", status=404)
    await console.post(
        f"{theirs}/announce", "admin@globex.test", {"text": "Hi", "device": "pi"}, status=404
    )

    assert (fleet, turns["turns"], alerts) == ({"devices": []}, [], {"alerts": [], "unread": 0})
    assert device["error"]["code"] == "device_not_found"


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/fleet?state=asleep", "query parameter 'state'"),
        ("/fleet/pi/telemetry?limit=0", "query parameter 'limit'"),
        ("/turns?before=-1", "query parameter 'before'"),
        ("/turns?device=../x", "query parameter 'device'"),
        ("/alerts?before_id=abc", "query parameter 'before_id'"),
    ],
)
async def test_bad_queries_get_a_clear_400(console: Console, path: str, says: str) -> None:
    console.status("pi")

    body = await console.get(f"{T}{path}", "admin@acme.test", status=400)

    assert body["error"]["code"] == "invalid_query"
    assert body["error"]["message"].startswith(says)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": "Hi", "device": "pi", "area": "hall"}, 400, "invalid_body"),
        ({"text": "Hi"}, 400, "invalid_body"),
        ({"text": "", "device": "pi"}, 400, "invalid_body"),
        ({"text": "x" * 501, "device": "pi"}, 400, "invalid_body"),
        ({"text": "Hi", "device": "nobody"}, 404, "device_not_found"),
        ({"text": "Hi", "area": "attic"}, 404, "device_not_found"),
    ],
)
async def test_bad_announcements_get_a_clear_error(
    console: Console, body: dict[str, Any], status: int, code: str
) -> None:
    console.status("pi", area="hall")

    answer = await console.post(f"{T}/announce", "member@acme.test", body, status=status)

    assert answer["error"]["code"] == code


async def test_an_announcement_the_broker_does_not_take_is_a_503(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_module, "PUBLISH_WAIT_SECONDS", 0.1)
    console.status("pi")

    answer = await console.post(
        f"{T}/announce", "member@acme.test", {"text": "Hi", "device": "pi"}, status=503
    )

    assert "sent to 0 of 1 devices" in answer["error"]["message"]


async def test_alerts_are_read_per_user(console: Console) -> None:
    console.status("pi")
    fleet = console.app[FLEET]
    fleet.alert(console.app[STORE].device("acme", "pi"), "device_error", "reported error mic")  # type: ignore[arg-type]
    fleet.tenant_alert("acme", "mcp_circuit_open", "weather", "MCP server weather fails")

    listed = await console.get(f"{T}/alerts", "member@acme.test")
    newest = listed["alerts"][0]
    await console.post(f"{T}/alerts/{newest['id']}/read", "member@acme.test", status=204)
    member = await console.get(f"{T}/alerts?unread=true", "member@acme.test")
    readonly = await console.get(f"{T}/alerts", "readonly@acme.test")
    await console.post(f"{T}/alerts/read-all", "readonly@acme.test", status=204)
    after = await console.get(f"{T}/alerts", "readonly@acme.test")
    missing = await console.post(f"{T}/alerts/abc/read", "member@acme.test", status=404)

    assert [(a["kind"], a["device"], a["read"]) for a in listed["alerts"]] == [
        ("mcp_circuit_open", None, False),
        ("device_error", "pi", False),
    ]
    assert [a["kind"] for a in member["alerts"]] == ["device_error"]
    assert member["unread"] == 1
    assert readonly["unread"] == 2
    assert after["unread"] == 0
    assert missing["error"]["code"] == "alert_not_found"


async def test_an_mcp_circuit_opening_and_a_quota_refusal_are_kept_as_alerts(
    console: Console,
) -> None:
    console.app[MCP].on_circuit_open("acme", "weather")  # type: ignore[misc]
    quotas = console.app[TURNS].quotas
    assert quotas is not None
    quotas._refuse("acme", "intents_per_minute")

    listed = await console.get(f"{T}/alerts", "readonly@acme.test")

    assert [(a["kind"], a["device"]) for a in listed["alerts"]] == [
        ("quota_reached", None),
        ("mcp_circuit_open", None),
    ]
    assert "weather" in listed["alerts"][1]["detail"]


async def open_stream(console: Console, email: str) -> ClientResponse:
    resp = await console.client.get(f"{T}/events", headers=await console.headers(email))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    return resp


async def test_the_stream_carries_device_turn_and_alert_events_filtered_by_role(
    console: Console,
) -> None:
    member = await open_stream(console, "member@acme.test")
    readonly = await open_stream(console, "readonly@acme.test")
    theirs = await console.client.get(
        "/api/tenants/globex/events", headers=await console.headers("admin@globex.test")
    )

    console.status("pi")
    console.turn("pi", "t-00000001")
    console.app[FLEET].tenant_alert("acme", "quota_reached", "intents_per_minute", "reached")

    name, device = await next_event(member)
    assert (name, device["device"], device["state"]) == ("device", "pi", "online")
    assert "last_turn" in device
    name, turn = await next_event(member)
    assert (name, turn["turn_id"], turn["text"]) == ("turn", "t-00000001", "turn on the light")
    name, alert = await next_event(member)
    assert (name, alert["kind"], alert["read"]) == ("alert", "quota_reached", False)
    seen = [await next_event(readonly), await next_event(readonly)]
    assert [n for n, _ in seen] == ["device", "alert"]
    assert "last_turn" not in seen[0][1]
    with pytest.raises(TimeoutError):
        await next_event(theirs, timeout=0.3)


async def test_the_stream_ends_when_its_access_token_expires(tmp_path: Path) -> None:
    console, _ = await start_console(tmp_path, access_token_seconds=1.0)
    try:
        resp = await open_stream(console, "member@acme.test")
        started = time.monotonic()

        assert await next_event(resp, timeout=5) == ("", None)
        assert time.monotonic() - started < 3
    finally:
        await console.client.close()


async def test_signing_out_ends_the_stream_at_the_next_ping(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_module, "PING_SECONDS", 0.1)
    headers = await console.headers("member@acme.test")
    resp = await console.client.get(f"{T}/events", headers=headers)

    await console.client.post("/api/auth/logout", headers=headers)

    assert await next_event(resp, timeout=5) == ("", None)


async def test_stopping_the_hub_ends_open_streams_at_once(tmp_path: Path) -> None:
    console, server = await start_console(tmp_path)
    streams = [await open_stream(console, "member@acme.test") for _ in range(3)]
    started = time.monotonic()

    await server.close()  # aiohttp waits up to 60 s for handlers still running

    assert time.monotonic() - started < 10
    assert [await next_event(s) for s in streams] == [("", None)] * 3
    await console.client.close()


async def test_one_user_cannot_open_more_than_their_share_of_streams(console: Console) -> None:
    headers = await console.headers("member@acme.test")
    for _ in range(MAX_SUBSCRIBERS_PER_USER):
        assert (await console.client.get(f"{T}/events", headers=headers)).status == 200

    refused = await console.client.get(f"{T}/events", headers=headers)
    other = await console.client.get(
        f"{T}/events", headers=await console.headers("readonly@acme.test")
    )

    assert refused.status == 429
    assert (await refused.json())["error"]["code"] == "rate_limited"
    assert other.status == 200

"""The console's API on a running hub with the real broker (dynamic security, enrolled
devices on their own logins) and real MCP servers: a published voice config reaches each
device's retained config topic with its own name and area, also a device enrolled later; a
revoked claim enrols nothing; an MCP server's connection is tested through the API."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from konak.devtools.mosquitto import Mosquitto
from konak.hub.keys import AUTH, SETTINGS
from konak.hub.security.rbac import Role
from konak.hub.settings import McpServerSettings
from konak.protocol import Config, Kind, decode_as, subscription
from konak.provisioning.enroll import Enrolment, enroll
from tests.integration.hub.conftest import (
    WAIT_SECONDS,
    RunningHub,
    everything_stdio,
    hub_settings,
)
from tests.integration.hub.test_console_fleet_api import next_event
from tests.integration.hub.test_enrolment import PASSWORD, device_probe
from tests.integration.hub.test_enrolment import start as start_enrolling_hub

pytestmark = pytest.mark.integration

VOICE = {
    "language": "en",
    "sentences": {"MakeCoffee": ["make [me] [a] {drink}"]},
    "slot_lists": {"drink": ["espresso", "flat white"]},
    "wake_words": [{"model": "hey_jarvis", "threshold": 0.35}],
}


@pytest.fixture
def dynsec_broker() -> Iterator[Mosquitto]:
    with Mosquitto(dynsec=True) as broker:
        yield broker


async def start(
    hubs: Any, broker: Mosquitto, tmp_path: Path, servers: tuple[McpServerSettings, ...] = ()
) -> tuple[RunningHub, str]:
    """The enrolment tests' hub (API, provisioning, an operator of acme) with ``servers``,
    an admin of acme and an admin of globex (the attacker)."""
    tenants = hub_settings(broker, tmp_path, servers).tenants
    running, url = await start_enrolling_hub(hubs, broker, tmp_path, tenants=tenants)
    users = running.runner.app[AUTH].users
    users.ensure_tenant("globex")
    for email, tenant in (("admin@acme.test", "acme"), ("admin@globex.test", "globex")):
        users.assign(tenant, users.create_user(email, PASSWORD).user_id, Role.ADMIN)
    return running, url


async def headers_of(http: ClientSession, url: str, email: str) -> dict[str, str]:
    resp = await http.post(f"{url}/api/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status == 200
    return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


async def enrol(
    http: ClientSession, url: str, headers: dict[str, str], name: str, area: str, tmp: Path
) -> Enrolment:
    resp = await http.post(f"{url}/api/tenants/acme/claims", json={}, headers=headers)
    assert resp.status == 201
    token = (await resp.json())["token"]
    return await asyncio.to_thread(enroll, url, token, name, area, tmp / f"{name}.json")


async def retained_config(login: Enrolment) -> tuple[Config, bool]:
    """The config the broker holds for an enrolled device, read with the device's login."""
    probe = await asyncio.to_thread(device_probe, login)
    try:
        topic = subscription(Kind.CONFIG, tenant=login.tenant, device=login.device)
        granted = await asyncio.to_thread(probe.subscribe, topic)
        assert not granted[0].is_failure
        got = await asyncio.to_thread(probe.next, WAIT_SECONDS)
    finally:
        probe.close()
    return decode_as(Config, got.payload, topic=got.topic), got.retain


async def test_a_published_voice_config_is_retained_on_each_devices_topic_with_its_name_and_area(
    dynsec_broker: Mosquitto, hubs: Any, tmp_path: Path
) -> None:
    _, url = await start(hubs, dynsec_broker, tmp_path)
    async with ClientSession() as http:
        ops = await headers_of(http, url, "ops@acme.test")
        kitchen = await enrol(http, url, ops, "Kitchen", "kitchen", tmp_path)
        hall = await enrol(http, url, ops, "Hall", "hall", tmp_path)
        saved = await http.put(
            f"{url}/api/tenants/acme/voice-config", json={**VOICE, "base_revision": 0}, headers=ops
        )
        assert saved.status == 200, await saved.text()
        stream = await http.get(f"{url}/api/tenants/acme/events", headers=ops)
        resp = await http.post(f"{url}/api/tenants/acme/voice-config/publish", json={}, headers=ops)
        published = await resp.json()
        announced = await next_event(stream, "voice_config")  # the console sees it live
        attic = await enrol(http, url, ops, "Attic", "attic", tmp_path)  # after publishing
        listed = await next_event(stream, "device")  # enrolled, live, before it says anything
        stream.close()
        config = await (await http.get(f"{url}/api/tenants/acme/voice-config", headers=ops)).json()

    assert resp.status == 200, published
    assert published == {"revision": 1, "devices": ["hall", "kitchen"]}
    assert config["published_at"] is not None
    assert announced == {"revision": 1, "published_at": config["published_at"]}
    assert (listed["device"], listed["name"], listed["area"]) == ("attic", "Attic", "attic")
    assert (listed["state"], listed["enrolled"]) == ("never_seen", True)
    for login, name, area in ((kitchen, "Kitchen", "kitchen"), (hall, "Hall", "hall"),
                              (attic, "Attic", "attic")):  # fmt: skip
        got, retained = await retained_config(login)
        assert retained, login.device
        assert (got.tenant, got.device, got.name, got.area) == ("acme", login.device, name, area)
        assert got.revision == 1
        assert got.sentences == VOICE["sentences"]
        assert got.slot_lists == VOICE["slot_lists"]
        assert [(w.model, w.threshold) for w in got.wake_words] == [("hey_jarvis", 0.35)]


async def test_another_tenants_admin_cannot_publish_or_read_and_a_broken_template_names_its_path(
    dynsec_broker: Mosquitto, hubs: Any, tmp_path: Path
) -> None:
    _, url = await start(hubs, dynsec_broker, tmp_path)
    voice = f"{url}/api/tenants/acme/voice-config"
    async with ClientSession() as http:
        ops = await headers_of(http, url, "ops@acme.test")
        intruder = await headers_of(http, url, "admin@globex.test")
        broken = await http.put(
            voice,
            json={**VOICE, "sentences": {"MakeCoffee": ["ok", "make {drink"]}, "base_revision": 0},
            headers=ops,
        )
        refused = (await broken.json())["error"]
        assert (
            await http.put(voice, json={**VOICE, "base_revision": 0}, headers=ops)
        ).status == 200
        attacks = [
            await http.get(voice, headers=intruder),
            await http.post(f"{voice}/publish", json={"revision": 1}, headers=intruder),
            await http.put(voice, json={**VOICE, "base_revision": 1}, headers=intruder),
        ]

    assert broken.status == 422
    assert refused["code"] == "sentence_invalid"
    assert refused["details"][0]["path"] == "sentences.MakeCoffee[1]"
    assert "end of list" in refused["details"][0]["message"]
    assert [a.status for a in attacks] == [404, 404, 404]


async def test_a_revoked_claim_enrols_nothing_and_creates_no_broker_login(
    dynsec_broker: Mosquitto, hubs: Any, tmp_path: Path
) -> None:
    running, url = await start(hubs, dynsec_broker, tmp_path)
    async with ClientSession() as http:
        ops = await headers_of(http, url, "ops@acme.test")
        minted = await (
            await http.post(f"{url}/api/tenants/acme/claims", json={}, headers=ops)
        ).json()
        revoked = await http.delete(
            f"{url}/api/tenants/acme/claims/{minted['claim_id']}", headers=ops
        )
        attempt = await http.post(
            f"{url}/api/enroll", json={"token": minted["token"], "name": "Kitchen"}
        )
        claims = (await (await http.get(f"{url}/api/tenants/acme/claims", headers=ops)).json())[
            "claims"
        ]

    assert revoked.status == 204
    assert attempt.status == 401
    assert running.runner.app[AUTH].claims.devices("acme") == []
    assert claims[0]["claim_id"] == minted["claim_id"]
    assert claims[0]["used_at"] is None
    assert claims[0]["expires_at"] <= claims[0]["created_at"] + WAIT_SECONDS * 10


async def test_testing_a_stdio_mcp_server_lists_its_tools_and_a_broken_one_says_why(
    dynsec_broker: Mosquitto, hubs: Any, tmp_path: Path
) -> None:
    broken = McpServerSettings(name="broken", command="node", args=("/nonexistent/server.js",))
    running, url = await start(hubs, dynsec_broker, tmp_path, (everything_stdio(),))
    async with ClientSession() as http:
        admin = await headers_of(http, url, "admin@acme.test")
        ops = await headers_of(http, url, "ops@acme.test")
        intruder = await headers_of(http, url, "admin@globex.test")
        base = f"{url}/api/tenants/acme/mcp-servers"
        tested = await http.post(f"{base}/everything/test", headers=admin)
        listed = await (await http.get(base, headers=admin)).json()
        as_operator = await http.post(f"{base}/everything/test", headers=ops)
        as_intruder = await http.post(f"{base}/everything/test", headers=intruder)
        through_own = await http.post(
            f"{url}/api/tenants/globex/mcp-servers/everything/test", headers=intruder
        )
        # The operator's hub.toml gains a server that cannot start (a reload, no restart).
        tenant = running.hub.settings.tenants["acme"]
        running.hub.app[SETTINGS].current = dataclasses.replace(
            running.hub.settings,
            tenants={
                "acme": dataclasses.replace(tenant, mcp_servers=(*tenant.mcp_servers, broken))
            },
        )
        failed = await (await http.post(f"{base}/broken/test", headers=admin)).json()

    answer = await tested.json()
    assert tested.status == 200, answer
    assert answer["ok"] is True
    assert answer["error"] is None
    names = [t["name"] for t in answer["tools"]]
    assert "echo" in names
    assert names == sorted(names)
    assert all(isinstance(t["description"], str) for t in answer["tools"])
    [everything] = listed["configured"]
    assert (everything["circuit"], everything["last_error"]) == ("closed", None)
    assert as_operator.status == 403
    assert (as_intruder.status, through_own.status) == (404, 404)
    assert failed["ok"] is False
    assert failed["tools"] == []
    assert failed["error"]

"""Attacks on the broker identities (issue 12, row 3): a device's login used with the hub's
or another device's MQTT client id must be refused by the real Mosquitto (dynamic security
binds each login to one client id), so nobody's session is taken over."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from konak.devtools.mosquitto import Credentials, Mosquitto
from konak.devtools.probe import MqttProbe, ProbeError
from konak.hub.settings import MqttSettings
from konak.protocol import Intent, Reply, decode_as
from konak.provisioning.enroll import Enrolment, enroll
from tests.integration.hub.conftest import WAIT_SECONDS, RunningHub
from tests.integration.hub.test_enrolment import mint, operator_headers, start

pytestmark = pytest.mark.integration

TAKEOVER = "already connected, closing old connection"


async def enrol(http: ClientSession, url: str, name: str, path: Path) -> Enrolment:
    token = await mint(http, url, await operator_headers(http, url))
    login: Enrolment = await asyncio.to_thread(enroll, url, token, name, None, path)
    return login


def connect(login: Enrolment, client_id: str) -> MqttProbe:
    creds = Credentials(login.username, login.password)
    return MqttProbe(login.host, login.port, creds, client_id).connect()


async def round_trip(probe: MqttProbe, device: str, turn_id: str) -> Reply:
    """The device sends an intent on its own topic and waits for the hub's reply."""
    await asyncio.to_thread(
        probe.subscribe, Reply(tenant="acme", device=device, turn_id="t-00000000").topic
    )
    turn = Intent(tenant="acme", device=device, turn_id=turn_id, text="what is this")
    await asyncio.to_thread(probe.publish, turn.topic, turn.to_payload())
    got = await asyncio.to_thread(probe.next, WAIT_SECONDS)
    return decode_as(Reply, got.payload, topic=got.topic)


async def healthz(http: ClientSession, running: RunningHub) -> int:
    resp = await http.get(f"http://127.0.0.1:{running.http_port}/healthz")
    return resp.status


async def test_a_device_login_with_the_hubs_client_id_is_refused_and_the_hub_stays_up(
    dynsec_broker: Mosquitto, hubs: Any, tmp_path: Path
) -> None:
    running, url = await start(hubs, dynsec_broker, tmp_path)
    hub_id = running.hub.settings.mqtt.client_id
    async with ClientSession() as http:
        kitchen = await enrol(http, url, "Kitchen", tmp_path / "kitchen.json")
        with pytest.raises(ProbeError, match="refused"):
            await asyncio.to_thread(connect, kitchen, hub_id)

        assert running.hub.ingest is not None
        assert running.hub.ingest.connected.is_set()
        assert await healthz(http, running) == 200
        device = await asyncio.to_thread(connect, kitchen, kitchen.username)
        try:
            reply = await round_trip(device, "kitchen", "t-after-attack")
        finally:
            device.close()
    assert (reply.turn_id, reply.outcome) == ("t-after-attack", "no_route")
    assert TAKEOVER not in dynsec_broker.log_tail(200)


async def test_a_device_login_with_another_devices_client_id_is_refused_and_that_device_stays(
    dynsec_broker: Mosquitto, hubs: Any, tmp_path: Path
) -> None:
    _, url = await start(hubs, dynsec_broker, tmp_path)
    async with ClientSession() as http:
        kitchen = await enrol(http, url, "Kitchen", tmp_path / "kitchen.json")
        hall = await enrol(http, url, "Hall", tmp_path / "hall.json")
    victim = await asyncio.to_thread(connect, hall, hall.username)
    try:
        for _ in range(3):  # "repeatedly"
            with pytest.raises(ProbeError, match="refused"):
                await asyncio.to_thread(connect, kitchen, hall.username)
        reply = await round_trip(victim, "hall", "t-victim-still-here")
    finally:
        victim.close()
    assert (reply.turn_id, reply.outcome) == ("t-victim-still-here", "no_route")
    assert TAKEOVER not in dynsec_broker.log_tail(200)


async def test_a_device_login_is_accepted_only_with_the_client_id_it_was_issued(
    dynsec_broker: Mosquitto, hubs: Any, tmp_path: Path
) -> None:
    _, url = await start(hubs, dynsec_broker, tmp_path)
    async with ClientSession() as http:
        kitchen = await enrol(http, url, "Kitchen", tmp_path / "kitchen.json")
    assert kitchen.client_id == "acme.kitchen"
    # Not even the daemon's old "konak-<tenant>-<device>" (ambiguous across tenants), nor an
    # id the broker would assign.
    for client_id in ("konak-acme-kitchen", ""):
        with pytest.raises(ProbeError, match="refused"):
            await asyncio.to_thread(connect, kitchen, client_id)
    (await asyncio.to_thread(connect, kitchen, kitchen.client_id)).close()


async def test_the_hubs_own_login_is_accepted_only_with_the_hubs_client_id(
    dynsec_broker: Mosquitto, hubs: Any, tmp_path: Path
) -> None:
    broker = dynsec_broker
    mqtt = MqttSettings(
        host=broker.host,
        port=broker.port,
        username=broker.hub.username,
        password=broker.hub.password,
        client_id=broker.hub_client_id,
        reconnect_seconds=0.2,
    )
    running, url = await start(hubs, broker, tmp_path, mqtt=mqtt)
    with pytest.raises(ProbeError, match="refused"):
        await asyncio.to_thread(
            lambda: MqttProbe(broker.host, broker.port, broker.hub, "not-the-hub").connect()
        )
    async with ClientSession() as http:
        kitchen = await enrol(http, url, "Kitchen", tmp_path / "kitchen.json")
        assert await healthz(http, running) == 200
    device = await asyncio.to_thread(connect, kitchen, kitchen.client_id)
    try:
        reply = await round_trip(device, "kitchen", "t-hub-login")
    finally:
        device.close()
    assert reply.outcome == "no_route"

"""Attacks on MQTT ingest (issue 12, rows 6 and 15), against a running hub on the real
broker: a broker login the hub never enrolled (or revoked) is not heard, and one device's
flood is dropped and counted while another tenant is still answered, with a bounded number
of alerts whose text Slack shows literally."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web

from konak.devtools.mosquitto import Credentials, Mosquitto
from konak.devtools.probe import MqttProbe
from konak.hub.settings import FleetSettings, TenantSettings
from konak.protocol import Intent, Reply, Status, decode_as
from konak.provisioning.dynsec import DeviceLogin, DynsecAdmin
from konak.provisioning.enroll import Enrolment, enroll
from tests.integration.hub.conftest import WAIT_SECONDS, Device, hub_settings
from tests.integration.hub.test_enrolment import mint, operator_headers, start

pytestmark = pytest.mark.integration

EVIL_NAME = "<!channel> <https://evil.example|click>"
FLOOD = 3000
BURST = 20


def probe_for(broker: Mosquitto, login: DeviceLogin | Enrolment) -> MqttProbe:
    """A device's connection with its own login and client id (its username)."""
    creds = Credentials(login.username, login.password)
    return MqttProbe(broker.host, broker.port, creds, login.username).connect()


async def send_intent(probe: MqttProbe, device: str, turn_id: str) -> None:
    await asyncio.to_thread(
        probe.subscribe, Reply(tenant="acme", device=device, turn_id="t-00000000").topic
    )
    turn = Intent(tenant="acme", device=device, turn_id=turn_id, text="what is this")
    await asyncio.to_thread(probe.publish, turn.topic, turn.to_payload())


async def test_intents_from_a_login_the_hub_never_enrolled_or_revoked_are_dropped_and_counted(
    dynsec_broker: Mosquitto, hubs: Any, tmp_path: Path
) -> None:
    broker = dynsec_broker
    running, url = await start(hubs, broker, tmp_path)
    async with ClientSession() as http:
        headers = await operator_headers(http, url)
        token = await mint(http, url, headers)
        await asyncio.to_thread(enroll, url, token, "Kitchen", None, tmp_path / "k.json")
        token = await mint(http, url, headers)
        hall = await asyncio.to_thread(enroll, url, token, "Hall", None, tmp_path / "h.json")
        resp = await http.delete(f"{url}/api/tenants/acme/devices/kitchen", headers=headers)
        assert resp.status == 204
    admin = broker.admin
    with DynsecAdmin(broker.host, broker.port, admin.username, admin.password) as dynsec:
        # Broker logins the hub's registry does not hold: one made beside the hub, and the
        # revoked device's, put back on the broker (say, from an old backup).
        ghost = await asyncio.to_thread(dynsec.create_device, "acme", "ghost")
        revoked = await asyncio.to_thread(dynsec.create_device, "acme", "kitchen")
    intruders = [await asyncio.to_thread(probe_for, broker, login) for login in (ghost, revoked)]
    legit = await asyncio.to_thread(probe_for, broker, hall)
    try:
        await send_intent(intruders[0], "ghost", "t-ghost-00001")
        await send_intent(intruders[1], "kitchen", "t-revoked-0001")
        await send_intent(legit, "hall", "t-enrolled-001")
        got = await asyncio.to_thread(legit.next, WAIT_SECONDS)
        assert running.hub.ingest is not None
        await running.hub.ingest.wait_dispatched(3, WAIT_SECONDS)
        unanswered = [p.messages.qsize() for p in intruders]
    finally:
        for probe in (*intruders, legit):
            probe.close()

    reply = decode_as(Reply, got.payload, topic=got.topic)
    assert (reply.turn_id, reply.outcome) == ("t-enrolled-001", "no_route")
    metrics = running.hub.metrics
    assert metrics.value("konak_hub_messages_dropped_total", {"reason": "not_enrolled"}) == 2
    assert metrics.value("konak_hub_intents_total", {"outcome": "no_route"}) == 1
    assert unanswered == [0, 0]


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, asyncio.Queue[dict[str, Any]]]]:
    """A real HTTP server that records Slack-style webhook posts."""
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await received.put(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", received
    await runner.cleanup()


async def test_a_flood_from_one_device_is_dropped_and_counted_and_another_tenant_is_answered(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Callable[..., Any],
    devices: Callable[..., Device],
    webhook: tuple[str, asyncio.Queue[dict[str, Any]]],
) -> None:
    url, posts = webhook
    base = hub_settings(broker, tmp_path)
    settings = dataclasses.replace(
        base,
        # A refill this slow adds no token during the test: exactly BURST messages pass.
        mqtt=dataclasses.replace(
            base.mqtt, device_message_burst=BURST, device_messages_per_second=0.0001
        ),
        fleet=FleetSettings(webhook_url=url, alert_repeat_seconds=300, alerts_per_minute=10),
        tenants={**base.tenants, "globex": TenantSettings("globex")},
    )
    running = await hubs(settings)
    noisy = devices("noisy-pi")
    calm = devices("calm-pi", tenant="globex")

    def flood() -> None:
        for n in range(FLOOD):
            # A new error code each time: before, every one of them was an alert.
            status = Status(
                tenant="acme", device="noisy-pi", state="error", error=f"e{n}", name=EVIL_NAME
            )
            noisy.probe.publish(status.topic, status.to_payload(), 1)

    await asyncio.to_thread(flood)
    await calm.send(
        Intent(tenant="globex", device="calm-pi", turn_id="t-calm-00001", text="what is this")
    )
    reply = await calm.reply()
    await running.hub.ingest.wait_dispatched(FLOOD + 1, 120)
    first_post = await asyncio.wait_for(posts.get(), WAIT_SECONDS)
    await running.hub.fleet.close()  # every alert still being posted has been posted

    assert (reply.turn_id, reply.outcome) == ("t-calm-00001", "no_route")
    metrics = running.hub.metrics
    dropped = metrics.value("konak_hub_messages_dropped_total", {"reason": "rate_limited"})
    assert dropped == FLOOD - BURST
    assert metrics.value("konak_hub_messages_in_total", {"kind": "status"}) == FLOOD
    assert metrics.value("konak_hub_alerts_total", {"kind": "device_error"}) == 1
    assert posts.qsize() == 0
    text = first_post["text"]
    assert "&lt;!channel&gt; &lt;https://evil.example|click&gt;" in text
    assert "<" not in text
    assert ">" not in text

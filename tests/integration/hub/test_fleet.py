"""Ingest robustness and fleet monitoring against the real broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from konak.devtools.mosquitto import Mosquitto
from konak.hub.settings import FleetSettings
from konak.protocol import Status, Telemetry

from .conftest import Device, hub_settings, intent

pytestmark = pytest.mark.integration

VALID: dict[str, Any] = {
    "v": 1,
    "type": "intent",
    "tenant": "acme",
    "device": "hall-pi",
    "turn_id": "t-0123456789",
    "text": "hello",
}
BREAKAGES: list[tuple[str, Any]] = [
    ("v", 2),
    ("v", "1"),
    ("type", "status"),
    ("type", 7),
    ("tenant", "someone-else"),
    ("device", "other-pi"),
    ("turn_id", "short"),
    ("turn_id", None),
    ("text", 42),
    ("slots", {"name": {"nested": True}}),
    ("wake_score", 7.5),
    ("intent", ""),
]


def _broken(key_value: tuple[str, Any], extra: dict[str, str]) -> bytes:
    key, value = key_value
    return json.dumps({**VALID, **extra, key: value}).encode()


def _missing(key: str) -> bytes:
    return json.dumps({k: v for k, v in VALID.items() if k != key}).encode()


malformed = st.one_of(
    st.binary(max_size=300).filter(lambda b: not b.strip().startswith(b"{")),
    st.text(max_size=200).map(str.encode).filter(lambda b: not b.strip().startswith(b"{")),
    st.builds(
        _broken,
        st.sampled_from(BREAKAGES),
        st.dictionaries(st.sampled_from(["lang", "x"]), st.text(max_size=10), max_size=2),
    ),
    st.sampled_from(list(VALID)).map(_missing),
    st.integers(70_000, 90_000).map(lambda n: b'{"v": 1, "pad": "' + b"x" * n + b'"}'),
    st.recursive(st.none() | st.booleans() | st.integers(), st.lists, max_leaves=5).map(
        lambda v: json.dumps(v).encode()
    ),
)


async def test_a_thousand_malformed_payloads_are_dropped_and_counted_while_the_hub_answers(
    broker: Mosquitto, tmp_path: Path, hubs: Callable[..., Any], devices: Callable[..., Device]
) -> None:
    running = await hubs(hub_settings(broker, tmp_path))
    hall = devices("hall-pi")
    topic = intent("hall-pi", "t-0123456789", None).topic
    sent = 0

    @settings(
        max_examples=1000,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(payload=malformed)
    def publish(payload: bytes) -> None:
        nonlocal sent
        hall.probe.publish(topic, payload, qos=1)
        sent += 1

    while sent < 1000:
        await asyncio.to_thread(publish)
    await running.hub.ingest.wait_dispatched(sent, 120)
    await hall.send(intent("hall-pi", "t-after-flood", None, text="what is this"))
    reply = await hall.reply()

    drops = running.hub.metrics.registry.get_sample_value
    codes = [
        "oversize", "malformed_json", "not_an_object", "missing_field", "wrong_type",
        "invalid_value", "unknown_version", "type_mismatch", "topic_mismatch", "bad_topic",
    ]  # fmt: skip
    total = sum(drops("konak_hub_messages_dropped_total", {"reason": c}) or 0 for c in codes)
    assert total == sent
    assert drops("konak_hub_messages_dropped_total", {"reason": "topic_mismatch"})
    assert reply.outcome == "no_route"
    assert reply.turn_id == "t-after-flood"


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
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/hook", received
    await runner.cleanup()


async def test_a_device_that_vanishes_triggers_the_offline_webhook_alert_via_its_last_will(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Callable[..., Any],
    webhook: tuple[str, asyncio.Queue[dict[str, Any]]],
) -> None:
    url, received = webhook
    fleet = FleetSettings(offline_alert_seconds=0.5, check_interval_seconds=0.1, webhook_url=url)
    running = await hubs(hub_settings(broker, tmp_path, fleet=fleet))
    will = Status(tenant="acme", device="garage-pi", state="offline")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(broker.admin.username, broker.admin.password)
    client.will_set(will.topic, will.to_payload(), qos=1, retain=True)
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    online = Status(tenant="acme", device="garage-pi", state="online", area="garage")
    await asyncio.to_thread(
        client.publish(online.topic, online.to_payload(), qos=1).wait_for_publish, 5
    )
    health = Telemetry(
        tenant="acme", device="garage-pi", uptime_seconds=5, cpu_percent=3, rss_bytes=1000
    )
    await asyncio.to_thread(client.publish(health.topic, health.to_payload()).wait_for_publish, 5)
    await running.hub.ingest.wait_dispatched(2, 10)

    client.loop_stop()
    sock = client.socket()
    assert sock is not None
    sock.close()  # vanish without DISCONNECT: the broker publishes the last will
    alert = await asyncio.wait_for(received.get(), 30)

    assert alert["kind"] == "device_offline"
    assert (alert["tenant"], alert["device"], alert["area"]) == ("acme", "garage-pi", "garage")
    assert alert["text"].startswith("Konak alert [acme]: device garage-pi (garage-pi) offline for")
    assert running.hub.metrics.value("konak_hub_alerts_total", {"kind": "device_offline"}) == 1
    history = running.hub.store.telemetry("acme", "garage-pi")
    assert [(h["uptime_seconds"], h["rss_bytes"]) for h in history] == [(5.0, 1000)]


async def test_a_device_reporting_an_error_triggers_one_webhook_alert(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Callable[..., Any],
    devices: Callable[..., Device],
    webhook: tuple[str, asyncio.Queue[dict[str, Any]]],
) -> None:
    url, received = webhook
    await hubs(hub_settings(broker, tmp_path, fleet=FleetSettings(webhook_url=url)))
    pi = devices("attic-pi")

    await pi.send(Status(tenant="acme", device="attic-pi", state="error", error="mic_missing"))
    alert = await asyncio.wait_for(received.get(), 20)

    assert alert["kind"] == "device_error"
    assert "mic_missing" in alert["text"]

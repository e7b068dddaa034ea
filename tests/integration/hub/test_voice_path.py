"""The hub's voice path end to end: a device's intent, konak-home, the real broker."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from konak.devtools.mosquitto import Mosquitto
from konak.devtools.probe import MqttProbe

from .conftest import Device, ZigbeeLights, home_server, hub_settings, intent

pytestmark = pytest.mark.integration


async def test_turn_on_kitchen_light_publishes_on_zigbee2mqtt_and_device_hears_the_reply(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Callable[..., Any],
    lights: ZigbeeLights,
    devices: Callable[..., Device],
    mqtt_probe: Callable[..., MqttProbe],
) -> None:
    z2m = mqtt_probe()
    z2m.subscribe("zigbee2mqtt/#")
    await hubs(hub_settings(broker, tmp_path, (home_server(broker, tmp_path),)))
    kitchen = devices("kitchen-pi")

    await kitchen.send(
        intent("kitchen-pi", "t-turn-on-01", "HassTurnOn", slots={"name": "kitchen light"})
    )

    command = await asyncio.to_thread(z2m.next, 20)
    assert command.topic == "zigbee2mqtt/kitchen light/set"
    assert json.loads(command.payload) == {"state": "ON"}
    reply = await kitchen.reply()
    assert (reply.turn_id, reply.outcome, reply.text) == (
        "t-turn-on-01",
        "ok",
        "Turned on the kitchen light.",
    )
    assert reply.speak


async def test_a_redelivered_intent_is_executed_once_also_across_a_hub_restart(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Callable[..., Any],
    lights: ZigbeeLights,
    devices: Callable[..., Device],
    mqtt_probe: Callable[..., MqttProbe],
) -> None:
    z2m = mqtt_probe()
    z2m.subscribe("zigbee2mqtt/+/set")
    settings = hub_settings(broker, tmp_path, (home_server(broker, tmp_path),))
    first_hub = await hubs(settings)
    kitchen = devices("kitchen-pi")
    turn_on = intent("kitchen-pi", "t-once-0001", "HassTurnOn", slots={"name": "kitchen light"})

    await kitchen.send(turn_on)
    assert (await kitchen.reply()).outcome == "ok"
    await kitchen.send(turn_on)
    again = await kitchen.reply()
    await first_hub.stop()
    await hubs(settings)
    await kitchen.send(turn_on)
    after_restart = await kitchen.reply()
    await kitchen.send(
        intent("kitchen-pi", "t-once-0002", "HassTurnOff", slots={"name": "kitchen light"})
    )
    assert (await kitchen.reply()).outcome == "ok"

    commands = [json.loads((await asyncio.to_thread(z2m.next, 20)).payload) for _ in range(2)]
    assert commands == [{"state": "ON"}, {"state": "OFF"}]
    assert (again.outcome, again.text, again.repeat) == (
        "ok",
        "Turned on the kitchen light.",
        True,
    )
    assert (after_restart.outcome, after_restart.repeat) == ("ok", True)


async def test_an_intent_that_arrives_expired_is_answered_too_late_and_never_executed(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Callable[..., Any],
    lights: ZigbeeLights,
    devices: Callable[..., Device],
    mqtt_probe: Callable[..., MqttProbe],
) -> None:
    z2m = mqtt_probe()
    z2m.subscribe("zigbee2mqtt/+/set")
    running = await hubs(hub_settings(broker, tmp_path, (home_server(broker, tmp_path),)))
    kitchen = devices("kitchen-pi")
    light = {"name": "kitchen light"}
    late = intent("kitchen-pi", "t-late-00001", "HassTurnOn", slots=light, expires_at=time.time())

    await kitchen.send(late)
    late_reply = await kitchen.reply()
    await kitchen.send(late)  # the broker's redelivery
    redelivered = await kitchen.reply()
    await kitchen.send(
        intent(
            "kitchen-pi", "t-timely-001", "HassTurnOff", slots=light, expires_at=time.time() + 60
        )
    )
    timely = await kitchen.reply()

    assert (late_reply.turn_id, late_reply.outcome, late_reply.text, late_reply.speak) == (
        "t-late-00001",
        "expired",
        "That came too late, so I didn't do it.",
        True,
    )
    assert (redelivered.outcome, redelivered.repeat) == ("expired", True)
    assert timely.outcome == "ok"
    # The light got only the timely command: the expired one never reached the tool.
    first = json.loads((await asyncio.to_thread(z2m.next, 20)).payload)
    assert first == {"state": "OFF"}
    assert running.hub.metrics.value("konak_hub_intents_total", {"outcome": "expired"}) == 1


async def test_arbitration_answers_only_the_device_with_the_highest_wake_score(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Callable[..., Any],
    lights: ZigbeeLights,
    devices: Callable[..., Device],
    mqtt_probe: Callable[..., MqttProbe],
) -> None:
    z2m = mqtt_probe()
    z2m.subscribe("zigbee2mqtt/+/set")
    running = await hubs(hub_settings(broker, tmp_path, (home_server(broker, tmp_path),)))
    near, far = devices("kitchen-near"), devices("kitchen-far")
    await near.online(area="kitchen")
    await far.online(area="kitchen")
    await running.hub.ingest.wait_dispatched(2, 10)
    slots = {"name": "kitchen light"}

    await far.send(intent("kitchen-far", "t-far-00001", "HassTurnOn", slots=slots, wake_score=0.6))
    await near.send(
        intent("kitchen-near", "t-near-0001", "HassTurnOn", slots=slots, wake_score=0.9)
    )
    near_reply, far_reply = await near.reply(), await far.reply()
    await near.send(intent("kitchen-near", "t-near-0002", "HassTurnOff", slots=slots))
    await near.reply()

    assert (near_reply.outcome, near_reply.speak) == ("ok", True)
    assert (far_reply.outcome, far_reply.text, far_reply.speak) == ("stand_down", "", False)
    commands = [json.loads((await asyncio.to_thread(z2m.next, 20)).payload) for _ in range(2)]
    assert commands == [{"state": "ON"}, {"state": "OFF"}]


async def test_an_intent_without_a_route_gets_a_spoken_cant_do_that_yet(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Callable[..., Any],
    devices: Callable[..., Device],
) -> None:
    await hubs(hub_settings(broker, tmp_path, (home_server(broker, tmp_path),)))
    kitchen = devices("kitchen-pi")

    await kitchen.send(intent("kitchen-pi", "t-noroute-1", "HassStartTimer", slots={"minutes": 5}))
    reply = await kitchen.reply()

    assert (reply.outcome, reply.text) == ("no_route", "I can't do that yet.")


async def test_konak_home_sets_a_light_and_reads_its_state_from_zigbee2mqtt(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Callable[..., Any],
    lights: ZigbeeLights,
    devices: Callable[..., Device],
    mqtt_probe: Callable[..., MqttProbe],
) -> None:
    z2m = mqtt_probe()
    z2m.subscribe("zigbee2mqtt/+/set")
    z2m.publish("zigbee2mqtt/hall switch", b'{"state": "OFF", "linkquality": 80}', retain=True)
    await hubs(hub_settings(broker, tmp_path, (home_server(broker, tmp_path),)))
    kitchen = devices("kitchen-pi")
    light = {"name": "kitchen light"}

    await kitchen.send(
        intent(
            "kitchen-pi",
            "t-set-000001",
            "HassLightSet",
            slots={**light, "brightness": 50, "color": "red"},
        )
    )
    set_reply = await kitchen.reply()
    command = await asyncio.to_thread(z2m.next, 20)
    await kitchen.send(
        intent("kitchen-pi", "t-state-0001", "HassGetState", slots={"name": "hall switch"})
    )
    state_reply = await kitchen.reply()
    await kitchen.send(
        intent("kitchen-pi", "t-unknown-01", "HassTurnOn", slots={"name": "garage door"})
    )
    unknown_reply = await kitchen.reply()

    assert (set_reply.outcome, set_reply.text) == ("ok", "Set the kitchen light.")
    assert command.topic == "zigbee2mqtt/kitchen light/set"
    assert json.loads(command.payload) == {
        "state": "ON",
        "brightness": 127,
        "color": {"hex": "#FF0000"},
    }
    assert (state_reply.outcome, state_reply.text) == ("ok", "The hall switch is off.")
    assert unknown_reply.outcome == "error"

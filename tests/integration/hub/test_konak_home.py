"""konak-home reports a command done only when the device's state echo shows it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from konak.devtools.mosquitto import Mosquitto

from .conftest import Device, ZigbeeLights, home_server, hub_settings, intent

pytestmark = pytest.mark.integration


async def test_a_light_that_echoes_its_state_is_reported_done_and_a_silent_one_is_not(
    broker: Mosquitto, tmp_path: Path, hubs: Callable[..., Any], devices: Callable[..., Device]
) -> None:
    lights = ZigbeeLights(broker, silent=("hall switch",)).start()
    try:
        await hubs(hub_settings(broker, tmp_path, (home_server(broker, tmp_path),)))
        pi = devices("kitchen-pi")
        await pi.send(
            intent("kitchen-pi", "t-echo-00001", "HassTurnOn", slots={"name": "kitchen light"})
        )
        echoed = await pi.reply()
        await pi.send(
            intent("kitchen-pi", "t-echo-00002", "HassTurnOn", slots={"name": "hall switch"})
        )
        silent = await pi.reply()
    finally:
        lights.close()

    assert (echoed.outcome, echoed.text) == ("ok", "Turned on the kitchen light.")
    assert (silent.outcome, silent.text) == (
        "ok",
        "I asked the hall switch to turn on, but it did not confirm.",
    )
    assert [name for name, _ in lights.commands] == ["kitchen light", "hall switch"]

"""Time, date and timers are answered on the device, also while the hub is away."""

from __future__ import annotations

import pytest

from konak.devtools.mosquitto import Mosquitto
from tests.daemon.fakes import FedSource

from .conftest import RunningDaemon, Speech, command

pytestmark = pytest.mark.integration


def test_time_and_a_timer_are_answered_on_the_device_while_the_broker_is_down(
    broker: Mosquitto, run_daemon: RunningDaemon, speech: Speech
) -> None:
    broker.kill()
    mic = FedSource()
    daemon, log = run_daemon(source=mic)
    mic.feed(speech(*command("what time is it?", tail=2.5)))
    log.wait_for(lambda e: e.type == "tts-end")
    mic.feed(speech(0.5))  # the loop notices that playback ended
    mic.feed(speech(*command("set a timer for three seconds.", lead=0.5, tail=2.5)))
    done = log.wait_for(lambda e: e.type == "tts-end" and e.data["text"] == "Your timer is done.")
    intents = [e.data["intent"] for e in log.events if e.type == "intent-end"]
    assert intents == ["HassGetCurrentTime", "HassStartTimer"]
    spoken = [e.data["text"] for e in log.events if e.type == "tts-end"]
    assert spoken[0].startswith("It is ")
    assert spoken[1:] == ["Timer set for 3 seconds.", "Your timer is done."]
    assert done.turn_id == "timer"
    assert len(daemon.outbox) == 0  # nothing waited for the hub
    assert [e.data["outcome"] for e in log.events if e.type == "hub-end"] == ["local", "local"]

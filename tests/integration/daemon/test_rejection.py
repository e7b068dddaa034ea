"""Speech that is not for the device yields no intent."""

from __future__ import annotations

from pathlib import Path

import pytest

from konak.daemon.settings import parse
from konak.devtools.mosquitto import Mosquitto
from konak.devtools.probe import ProbeError
from konak.protocol import Kind, subscription
from tests.conftest import ProbeFactory

from .conftest import RunningDaemon, daemon_config

pytestmark = pytest.mark.integration

PARAGRAPH = (
    "The history of the river town goes back many centuries. Merchants traveled along the "
    "water carrying salt, grain and wool to the markets in the south. In the spring the "
    "floods would cover the lower fields, and the farmers moved their animals to the hills. "
    "Today the old bridge is a museum, and visitors walk along the banks in the evening, "
    "watching the boats and talking about the weather and their plans for the summer."
)


def _start(broker, tmp_path, models_dir, run_daemon, source):  # type: ignore[no-untyped-def]
    raw = daemon_config(
        broker, tmp_path, models_dir, audio={"source": "file", "source_path": str(source)}
    )
    return run_daemon(parse(raw, base_dir=tmp_path, default_models_dir=models_dir))


def test_a_twenty_second_paragraph_without_the_wake_word_wakes_nothing(
    broker: Mosquitto,
    mqtt_probe: ProbeFactory,
    run_daemon: RunningDaemon,
    wav,
    speech,
    tmp_path: Path,
    models_dir: Path,
) -> None:
    hub = mqtt_probe()
    hub.subscribe(subscription())
    assert speech(PARAGRAPH).size / 16_000 >= 20
    daemon, log = _start(broker, tmp_path, models_dir, run_daemon, wav(1.0, PARAGRAPH, 1.0))
    status = hub.next(timeout=30)  # the daemon's retained online status comes first
    assert status.topic.endswith("/status")
    assert daemon.source_done.wait(60)
    assert log.types() == []
    kinds = set()
    while True:
        try:
            kinds.add(hub.next(timeout=0.5).topic.rsplit("/", 1)[1])
        except ProbeError:
            break
    assert kinds <= {"status"}


def test_an_out_of_grammar_command_after_the_wake_word_gets_no_intent_but_an_apology(
    broker: Mosquitto,
    mqtt_probe: ProbeFactory,
    run_daemon: RunningDaemon,
    wav,
    tmp_path: Path,
    models_dir: Path,
) -> None:
    hub = mqtt_probe()
    hub.subscribe(subscription(Kind.INTENT))
    source = wav(1.0, "Hey Jarvis,", 0.3, "tell me a joke about penguins.", 1.5)
    _daemon, log = _start(broker, tmp_path, models_dir, run_daemon, source)
    log.wait_for(lambda e: e.type == "run-end")
    assert log.types() == [
        "run-start", "wake-start", "wake-end", "stt-start", "vad-start", "vad-end", "stt-end",
        "error", "tts-start", "tts-end", "run-end",
    ]  # fmt: skip
    error = next(e for e in log.events if e.type == "error")
    assert error.data == {"code": "not_understood"}
    spoken = next(e for e in log.events if e.type == "tts-end")
    assert spoken.data["text"] == "Sorry, I didn't catch that."
    with pytest.raises(ProbeError):
        hub.next(timeout=1.0)

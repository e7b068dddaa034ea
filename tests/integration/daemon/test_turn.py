"""A whole voice turn with the real models and a real Mosquitto."""

from __future__ import annotations

from pathlib import Path

import pytest

from konak.daemon.audio import RATE_HZ, read_wav, resample
from konak.daemon.engines import Engines
from konak.daemon.settings import parse
from konak.daemon.stt import PocketSphinxStt, agreement
from konak.devtools.mosquitto import Mosquitto
from konak.devtools.probe import MqttProbe
from konak.protocol import Intent, Kind, Reply, subscription
from tests.conftest import ProbeFactory

from .conftest import RunningDaemon, daemon_config

pytestmark = pytest.mark.integration

COMMAND = ("Hey Jarvis,", 0.3, "turn on the kitchen light.")


def _settings(broker: Mosquitto, tmp_path: Path, models_dir: Path, source: Path) -> object:
    raw = daemon_config(
        broker, tmp_path, models_dir, audio={"source": "file", "source_path": str(source)}
    )
    return parse(raw, base_dir=tmp_path, default_models_dir=models_dir)


def test_a_spoken_command_becomes_one_intent_and_the_reply_is_spoken_into_the_sink(
    broker: Mosquitto,
    mqtt_probe: ProbeFactory,
    run_daemon: RunningDaemon,
    wav,
    tmp_path: Path,
    models_dir: Path,
    shared_engines: Engines,
) -> None:
    hub: MqttProbe = mqtt_probe()
    hub.subscribe(subscription(Kind.INTENT))
    source = wav(1.0, *COMMAND, 1.5)
    _daemon, log = run_daemon(_settings(broker, tmp_path, models_dir, source))

    log.wait_for(lambda e: e.type == "hub-start", timeout=30)
    received = hub.next(timeout=30)
    intent = Intent.from_payload(received.payload, topic=received.topic)
    assert (intent.intent, intent.slots) == ("HassTurnOn", {"area": "kitchen", "domain": "light"})
    assert intent.text == "turn on the kitchen light"
    assert intent.wake_word == "hey_jarvis"

    reply = Reply(
        tenant="acme", device="kitchen-pi", turn_id=intent.turn_id, text="The kitchen light is on."
    )
    hub.publish(reply.topic, reply.to_payload())
    log.wait_for(lambda e: e.type == "run-end" and e.turn_id == intent.turn_id)
    with pytest.raises(Exception, match="no message"):
        hub.next(timeout=0.5)  # exactly one intent

    turn = [e.type for e in log.events if e.turn_id == intent.turn_id]
    assert turn == [
        "run-start", "wake-start", "wake-end", "stt-start", "vad-start", "vad-end", "stt-end",
        "intent-start", "intent-end", "hub-start", "hub-end", "tts-start", "tts-end", "run-end",
    ]  # fmt: skip
    samples, rate = read_wav(tmp_path / "out.wav")
    stt = PocketSphinxStt(shared_engines_dir(models_dir))
    spoken = stt.transcribe(resample(samples, rate, RATE_HZ)).text
    # The open model is weak on single words ("light" -> "why"); compare the sounds.
    similarity = agreement(stt.phones(spoken), stt.phones("the kitchen light is on"))
    assert "kitchen" in spoken.split()
    assert similarity >= 0.6, spoken


def shared_engines_dir(models_dir: Path) -> Path:
    from konak.daemon.engines import model_path

    return model_path(models_dir, "pocketsphinx-en-us", "stt.model")

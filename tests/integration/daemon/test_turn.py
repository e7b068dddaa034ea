"""A whole voice turn with the real models and a real Mosquitto."""

from __future__ import annotations

from pathlib import Path

import pytest

from konak.daemon.audio import RATE_HZ, read_wav, resample
from konak.daemon.stt import PocketSphinxStt, agreement
from konak.protocol import Intent, Kind, Reply

from .conftest import Listen, RunningDaemon, Wav, command

pytestmark = pytest.mark.integration


def test_a_spoken_command_becomes_one_intent_and_the_reply_is_spoken_into_the_sink(
    listen: Listen,
    run_daemon: RunningDaemon,
    wav: Wav,
    tmp_path: Path,
    models_dir: Path,
) -> None:
    hub = listen(Kind.INTENT)
    _daemon, log = run_daemon(source=wav(*command("turn on the kitchen light.")))

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

"""While a reply plays: no wake (the device's own voice), barge-in, and the stop word."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from konak.daemon.engines import model_path
from konak.daemon.wake import OpenWakeWord
from konak.protocol import Intent, Kind, Reply
from tests.daemon.fakes import FedSource

from .conftest import EventLog, GatedSink, Listen, RunningDaemon, Speech, command

pytestmark = pytest.mark.integration

LONG_REPLY = (
    "The kitchen light is on. The bedroom lamp is off. The front door is locked. "
    "It will rain tomorrow afternoon. Your next meeting is at three."
)


def _start_and_reply(
    listen: Listen,
    run_daemon: RunningDaemon,
    speech: Speech,
    wake: dict[str, Any],
    engine: OpenWakeWord | None = None,
) -> tuple[FedSource, GatedSink, EventLog, str]:
    """A daemon that has heard one command and is now playing the hub's long reply."""
    hub = listen(Kind.INTENT)
    source, sink = FedSource(), GatedSink()
    _daemon, log = run_daemon(
        source=source, sink=sink, wake_engine=engine, wake=wake, tts={"earcons": False}
    )
    source.feed(speech(*command("turn on the kitchen light.")))
    received = hub.next(timeout=60)
    intent = Intent.from_payload(received.payload, topic=received.topic)
    reply = Reply(tenant="acme", device="kitchen-pi", turn_id=intent.turn_id, text=LONG_REPLY)
    hub.publish(reply.topic, reply.to_payload())
    log.wait_for(lambda e: e.type == "tts-start" and e.turn_id == intent.turn_id)
    assert sink.playing.wait(timeout=60)
    return source, sink, log, intent.turn_id


def _reply_end(log: EventLog, turn_id: str) -> Any:
    return log.wait_for(lambda e: e.type == "tts-end" and e.turn_id == turn_id)


def test_the_wake_word_heard_while_a_reply_plays_starts_no_new_turn(
    listen: Listen, run_daemon: RunningDaemon, speech: Speech
) -> None:
    source, sink, log, turn_id = _start_and_reply(listen, run_daemon, speech, wake={})
    source.feed(speech(*command("turn off the bedroom lamp.", lead=0.5)))
    source.wait_heard()
    assert not any(e.type == "tts-end" for e in log.events)  # heard during playback
    sink.release()
    end = _reply_end(log, turn_id)
    assert end.data["interrupted"] is False
    assert end.data["sentences"] == 5
    assert log.types().count("run-start") == 1


def test_with_barge_in_the_wake_word_interrupts_the_reply_and_starts_a_new_turn(
    listen: Listen, run_daemon: RunningDaemon, speech: Speech
) -> None:
    source, sink, log, turn_id = _start_and_reply(
        listen, run_daemon, speech, wake={"barge_in": True}
    )
    source.feed(speech(*command("turn off the bedroom lamp.", lead=0.5)))
    second = log.wait_for(lambda e: e.type == "run-start" and e.turn_id != turn_id)
    sink.release()
    end = _reply_end(log, turn_id)
    assert end.data["interrupted"] is True
    assert end.data["sentences"] < 5
    woke = log.wait_for(lambda e: e.type == "wake-end" and e.turn_id == second.turn_id)
    assert woke.data["word"] == "hey_jarvis"


def test_the_stop_word_interrupts_the_reply_without_starting_a_turn(
    listen: Listen, run_daemon: RunningDaemon, speech: Speech, models_dir: Path
) -> None:
    features = "wake (feature model)"
    engine = OpenWakeWord(
        model_path(models_dir, "oww-melspectrogram", features),
        model_path(models_dir, "oww-embedding", features),
        {
            "hey_jarvis": model_path(models_dir, "oww-hey-jarvis", "wake"),
            "alexa": model_path(models_dir, "oww-alexa", "wake"),
        },
    )
    source, sink, log, turn_id = _start_and_reply(
        listen, run_daemon, speech, wake={"stop_word": "oww-alexa"}, engine=engine
    )
    source.feed(speech(0.5, "Alexa!", 1.0))
    source.wait_heard()
    sink.release()
    end = _reply_end(log, turn_id)
    assert end.data["interrupted"] is True
    assert end.data["sentences"] < 5
    log.wait_for(lambda e: e.type == "run-end" and e.turn_id == turn_id)
    assert log.types().count("run-start") == 1

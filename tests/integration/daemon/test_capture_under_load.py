"""A recogniser slower than real time does not stall the microphone: nothing is dropped
and the next wake word, spoken while the first command is still being decoded, is heard."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from konak.daemon.audio import FileSource, NullSink
from konak.daemon.engines import Engines
from konak.daemon.service import Daemon
from tests.daemon.fakes import Events, FakeHub, FakeIntents, FakeStt, FakeTts, settings

from .conftest import Wav

pytestmark = pytest.mark.integration


def test_a_slow_recogniser_drops_no_audio_and_the_next_wake_word_is_heard(
    shared_engines: Engines, wav: Wav, tmp_path: Path
) -> None:
    audio = wav(
        1.0, "Hey Jarvis,", 0.3, "turn on the kitchen light.", 1.2,
        "Hey Jarvis,", 0.3, "turn off the bedroom lamp.", 2.0,
    )  # fmt: skip
    source = FileSource(audio, realtime=True)  # paced like a microphone
    # Three times slower than real time: 240 ms of work per 80 ms chunk.
    stt = FakeStt("turn on the kitchen light", "turn off the bedroom lamp", feed_seconds=0.24)
    engines = replace(shared_engines, stt=stt, intents=FakeIntents(), tts=FakeTts())
    engines.wake.reset()
    hub = FakeHub()
    daemon = Daemon(
        settings(tmp_path, vad={"end_silence_seconds": 0.7, "no_speech_timeout_seconds": 4.0}),
        engines,
        source,
        NullSink(),
        offline=True,
        hub_port=hub,
    )
    events = Events()
    daemon.bus.subscribe(events)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        events.wait_ends(2, timeout=90)
        assert daemon.source_done.wait(60)
    finally:
        daemon.stop()
        thread.join(10)
    first, second = events.turns()
    woke = [e for e in events.events if e.type == "wake-end"]
    assert [e.data["word"] for e in woke] == ["hey_jarvis", "hey_jarvis"]
    # The second wake word was heard while the first command was still being decoded.
    second_start = next(e for e in events.events if e.type == "run-start" and e.turn_id == second)
    first_heard = next(e for e in events.events if e.type == "stt-end" and e.turn_id == first)
    assert second_start.at < first_heard.at
    assert [i.intent for i in hub.sent] == ["HassTurnOn", "HassTurnOff"]
    stats = daemon.capture.stats
    assert stats.dropped_chunks == 0
    assert stats.chunks == source.samples.size // 1280 + (source.samples.size % 1280 > 0)
    for turn in (first, second):
        types = [e.type for e in events.events if e.turn_id == turn]
        assert types.count("run-start") == types.count("run-end") == 1

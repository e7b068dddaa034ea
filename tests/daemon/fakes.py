"""Fakes at the daemon's engine seams: audio markers stand for wake words and speech."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from konak.daemon.audio import CHUNK_SAMPLES, RATE_HZ, AudioChunk, Samples, chunked
from konak.daemon.engines import Engines
from konak.daemon.events import Event, EventLog
from konak.daemon.intent import Recognized
from konak.daemon.settings import Settings, parse
from konak.daemon.stt import Transcript
from konak.protocol import Intent, Reply

WAKE = 3000  # a chunk of this value is the wake word "hey_jarvis"
STOP = 2000  # ... the stop word "alexa"
SPEECH = 1000  # ... speech
SILENCE = 0


def chunks(value: int, seconds: float) -> Samples:
    """``seconds`` of audio of one marker value."""
    return np.full(round(seconds / 0.08) * CHUNK_SAMPLES, value, np.int16)


def command(speech_seconds: float = 1.2, silence_seconds: float = 1.0) -> Samples:
    """The wake word, a short pause, a command, then silence."""
    return np.concatenate(
        [
            chunks(SILENCE, 0.4),
            chunks(WAKE, 0.16),
            chunks(SILENCE, 0.24),
            chunks(SPEECH, speech_seconds),
            chunks(SILENCE, silence_seconds),
        ]
    )


class FakeWake:
    """Scores 1.0 for the word whose marker fills the chunk."""

    def __init__(self) -> None:
        self.resets = 0

    def process(self, samples: Samples) -> dict[str, float]:
        value = int(samples[0])
        return {"hey_jarvis": float(value == WAKE), "alexa": float(value == STOP)}

    def reset(self) -> None:
        self.resets += 1


class FakeVad:
    """Speech wherever the frame is not silent."""

    def __call__(self, frame: Samples) -> float:
        return 1.0 if np.abs(frame).max() > 0 else 0.0

    def reset(self) -> None:
        """Stateless."""


class FakeStt:
    """Answers each command with the next scripted text (or exception); records what it
    was fed; ``feed_seconds`` makes it slower than real time."""

    def __init__(
        self,
        *answers: str | Exception,
        feed_seconds: float = 0.0,
        partial_after_seconds: float | None = None,
    ) -> None:
        self.answers = list(answers)
        self.fed: list[int] = []  # samples per command
        self.speech: list[int] = []  # of them, samples that are not silence
        self.feed_seconds = feed_seconds
        # With it, partial() gives the whole answer once this much speech (the wake word's
        # marker included) was fed; silence in the pre-roll does not count.
        self.partial_after_seconds = partial_after_seconds
        self.partial_complete = threading.Event()  # partial() has given a whole command
        self.in_utterance = False

    def start(self) -> _FakeStream:
        if self.in_utterance:
            raise RuntimeError("Failed to start utterance processing")  # as pocketsphinx
        self.in_utterance = True
        self.fed.append(0)
        self.speech.append(0)
        return _FakeStream(self)

    def transcribe(self, samples: Samples) -> Transcript:
        stream = self.start()
        stream.feed(samples)
        return stream.finish()


class _FakeStream:
    def __init__(self, stt: FakeStt) -> None:
        self.stt = stt

    def feed(self, samples: Samples) -> None:
        if self.stt.feed_seconds:
            time.sleep(self.stt.feed_seconds)  # simulated decoding work, not coordination
        self.stt.fed[-1] += samples.size
        self.stt.speech[-1] += int(np.count_nonzero(samples))

    def partial(self) -> str:
        after = self.stt.partial_after_seconds
        if after is None or not self.stt.answers:
            return ""
        answer = self.stt.answers[0]
        if self.stt.speech[-1] < after * RATE_HZ or isinstance(answer, Exception):
            return "turn"  # not a command yet
        self.stt.partial_complete.set()
        return answer

    def finish(self) -> Transcript:
        self.stt.in_utterance = False
        answer = self.stt.answers.pop(0) if self.stt.answers else ""
        if isinstance(answer, Exception):
            raise answer
        return Transcript(answer, rejected=not answer)


class FakeIntents:
    """``turn on X`` / ``turn off X`` / ``what time is it``; anything else matches nothing."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail

    def recognize(self, text: str) -> Recognized | None:
        if self.fail is not None:
            raise self.fail
        if text.startswith("turn on "):
            return Recognized("HassTurnOn", {"name": text.removeprefix("turn on ")})
        if text.startswith("turn off "):
            return Recognized("HassTurnOff", {"name": text.removeprefix("turn off ")})
        if text == "what time is it":
            return Recognized("HassGetCurrentTime")
        return None


class FakeTts:
    """One chunk of 0.1 s per sentence; ``fail`` raises instead."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail

    def sentences(self, text: str) -> Iterator[tuple[Samples, int]]:
        if self.fail is not None:
            raise self.fail
        for _sentence in [s for s in text.split(". ") if s]:
            yield np.zeros(2205, np.int16), 22_050


class RecordingSink:
    """Keeps what is played; with ``gated``, each play waits for :meth:`release`."""

    def __init__(self, *, gated: bool = False) -> None:
        self.played: list[int] = []
        self.playing = threading.Event()
        self.released = threading.Event()
        if not gated:
            self.released.set()

    def play(self, samples: Samples, rate_hz: int) -> None:
        self.playing.set()
        self.released.wait(30)
        self.played.append(samples.size)

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()


class FedSource:
    """Audio the test feeds on cue (not live: the daemon takes each chunk as it comes)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Samples | None] = queue.Queue()
        self._fed = 0
        self._heard = 0
        self._cond = threading.Condition()

    def feed(self, samples: Samples) -> None:
        with self._cond:
            self._fed += 1
        self._queue.put(samples)

    def wait_heard(self, timeout: float = 60.0) -> None:
        """Until the daemon has taken every chunk fed so far."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._heard == self._fed, timeout):
                raise AssertionError("the daemon did not take the fed audio")

    def chunks(self) -> Iterator[AudioChunk]:
        position = 0.0
        while (samples := self._queue.get()) is not None:
            yield from chunked(samples, position)
            position += samples.size / RATE_HZ
            with self._cond:
                self._heard += 1
                self._cond.notify_all()

    def close(self) -> None:
        self._queue.put(None)


@dataclass
class FakeHub:
    """The hub as a turn sees it: records intents, answers from a script or times out."""

    replies: list[Reply | None] = field(default_factory=list)
    sent: list[Intent] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    gated: bool = False

    def send(self, intent: Intent) -> None:
        self.sent.append(intent)

    def wait_reply(self, turn_id: str, timeout: float, cancelled: threading.Event) -> Reply | None:
        from konak.daemon.pipeline import RunCancelled

        if self.gated:
            while not self.gate.wait(0.01):
                if cancelled.is_set():
                    raise RunCancelled
        script = (
            self.replies.pop(0)
            if self.replies
            else Reply(tenant="acme", device="pi", turn_id=turn_id, text="Done.")
        )
        if script is None:
            if cancelled.wait(timeout):
                raise RunCancelled
            return None
        return script.model_copy(update={"turn_id": turn_id})

    def queued(self) -> int:
        return 0


def settings(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    """Settings for fake engines: quick endpointing, earcons off unless asked."""
    raw: dict[str, Any] = {
        "device": {"tenant": "acme", "device": "pi", "area": "kitchen"},
        "audio": {"source": "none", "sink": "none"},
        "vad": {"end_silence_seconds": 0.4, "no_speech_timeout_seconds": 0.8},
        "tts": {"earcons": False},
        "hub": {"queue_path": str(tmp_path / "queue.sqlite3"), "reply_timeout_seconds": 0.3},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return parse(raw, base_dir=tmp_path, default_models_dir=tmp_path)


def engines(stt: FakeStt, *, intents: Any = None, tts: Any = None) -> Engines:
    """Engines made of fakes."""
    return Engines(
        wake=FakeWake(),  # type: ignore[arg-type]
        vad=FakeVad(),  # type: ignore[arg-type]
        stt=stt,
        intents=intents or FakeIntents(),  # type: ignore[arg-type]
        tts=tts or FakeTts(),  # type: ignore[arg-type]
    )


class Events(EventLog):
    """The daemon's event log for tests: a wait that fails the test when it times out."""

    default_timeout = 10.0

    def wait_for(  # type: ignore[override]
        self, predicate: Callable[[Event], bool], timeout: float | None = None
    ) -> Event:
        limit = self.default_timeout if timeout is None else timeout
        found = super().wait_for(predicate, limit)
        if found is None:
            raise AssertionError(f"no matching event within {limit}s: {self.types()}")
        return found

    def wait_ends(self, count: int, timeout: float | None = None) -> None:
        """Until ``count`` runs have ended."""
        limit = self.default_timeout if timeout is None else timeout
        if not self.wait_until(lambda es: sum(e.type == "run-end" for e in es) >= count, limit):
            raise AssertionError(f"{count} runs did not end: {self.types()}")

    def turns(self) -> list[str]:
        """Turn ids in the order their runs started."""
        return [e.turn_id for e in self.events if e.type == "run-start"]

    def snapshot(self, turn_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The run's events with their data, durations left out (they vary)."""
        out = []
        for e in self.events:
            if e.turn_id != turn_id:
                continue
            data = {k: v for k, v in e.data.items() if k != "duration_ms"}
            if e.type.endswith("-end") and e.type != "run-end":
                assert e.data["duration_ms"] >= 0, e
            out.append((e.type, data))
        return out

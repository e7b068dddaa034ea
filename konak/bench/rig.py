"""What the daemon benchmarks share: the models directory, daemon settings, the spoken
commands (synthesised once and cached), a real-time paced microphone and a recording sink."""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from konak.daemon.audio import CHUNK_SAMPLES, RATE_HZ, AudioChunk, Samples, read_wav, write_wav
from konak.daemon.settings import Settings, parse
from konak.devtools.mosquitto import Mosquitto

logger = logging.getLogger(__name__)

TENANT: Final = "bench"
DEVICE: Final = "bench-pi"
VOICE: Final = "piper-en-us-joe-medium"
WAKE_PHRASE: Final = "Hey Jarvis,"
PAUSE_SECONDS: Final = 0.3  # between the wake phrase and the command, in piper's speech
LIGHTS: Final = (("kitchen light", "kitchen"), ("bedroom lamp", "bedroom"))
SLOT_LISTS: Final = {"name": [n for n, _ in LIGHTS], "area": [a for _, a in LIGHTS]}
COMMANDS: Final = (
    "turn on the kitchen light.",
    "turn off the kitchen light.",
    "turn on the bedroom lamp.",
    "turn off the bedroom lamp.",
)
# The turn benchmark: ten distinct commands for the hub (expected intent beside each), in
# the project's piper voice and two espeak-ng voices it was not tuned on.
TURN_COMMANDS: Final = (
    ("turn on the kitchen light.", "HassTurnOn"),
    ("turn off the kitchen light.", "HassTurnOff"),
    ("turn on the bedroom lamp.", "HassTurnOn"),
    ("turn off the bedroom lamp.", "HassTurnOff"),
    ("switch on the kitchen light.", "HassTurnOn"),
    ("switch off the bedroom lamp.", "HassTurnOff"),
    ("turn the kitchen light on.", "HassTurnOn"),
    ("turn the bedroom lamp off.", "HassTurnOff"),
    ("turn on the lights in the kitchen.", "HassTurnOn"),
    ("turn off the lights in the bedroom.", "HassTurnOff"),
)
TURN_VOICES: Final = ("piper", "en-us+f3@165", "en-gb+m3@140")
SPEECH_LEVEL: Final = 300  # |sample| above this counts as speech when finding its true end
CHUNK_SECONDS: Final = CHUNK_SAMPLES / RATE_HZ


def models_dir() -> Path:
    """The installed models: ``$KONAK_MODELS_DIR`` or the store's default."""
    from konak.edge_models.settings import ModelSettings

    return ModelSettings.resolve(
        models_dir=None, accept_licenses=(), environ=os.environ, config={}
    ).models_dir


def daemon_raw(work: Path, models: Path, hub: dict[str, Any] | None = None) -> dict[str, Any]:
    """A daemon config dict (TOML shape) writing its queue into ``work``."""
    return {
        "device": {"tenant": TENANT, "device": DEVICE, "area": "kitchen"},
        "models": {"dir": str(models)},
        "audio": {"source": "none", "sink": "none"},
        "intent": {"slot_lists": SLOT_LISTS},
        "hub": {"queue_path": str(work / "queue.sqlite3"), **(hub or {})},
    }


def broker_link(broker: Mosquitto, **extra: Any) -> dict[str, Any]:
    """The daemon's ``[hub]`` table for ``broker``'s admin login (plus ``extra`` keys)."""
    return {
        "host": broker.host,
        "port": broker.port,
        "username": broker.admin.username,
        "password": broker.admin.password,
        **extra,
    }


def daemon_settings(work: Path, models: Path, hub: dict[str, Any] | None = None) -> Settings:
    """Validated daemon settings for the benchmarks."""
    return parse(daemon_raw(work, models, hub), base_dir=work, default_models_dir=models)


@dataclass(frozen=True)
class Utterance:
    """A spoken command: 16 kHz samples and where the speech truly ends in them."""

    text: str
    samples: Samples
    speech_end_sample: int
    voice: str = "piper"
    intent: str | None = None  # the intent it should become


def true_speech_end(samples: Samples) -> int:
    """The index just after the last sample louder than :data:`SPEECH_LEVEL`."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > SPEECH_LEVEL)
    return int(loud[-1]) + 1 if loud.size else 0


def with_pauses(parts: list[str]) -> list[str | float]:
    """The wake phrase and the command with the short pause piper's voice leaves between."""
    out: list[str | float] = []
    for part in parts:
        out += [PAUSE_SECONDS, part] if out else [part]
    return out


def spoken_commands(
    cache: Path, models: Path, *, wake: bool = True, texts: tuple[str, ...] | list[str] = COMMANDS
) -> list[Utterance]:
    """Each command (after the wake phrase) as speech, synthesised once into ``cache``."""
    from konak.daemon.engines import model_path
    from konak.daemon.tts import spoken

    cache.mkdir(parents=True, exist_ok=True)
    ignore = cache / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    voice: Any = None
    out = []
    for text in texts:
        parts = [WAKE_PHRASE, text] if wake else [text]
        key = hashlib.sha256(repr((VOICE, parts)).encode()).hexdigest()[:16]
        path = cache / f"{key}.wav"
        if path.exists():
            samples, _ = read_wav(path)
        else:
            if voice is None:
                from konak.daemon.tts import PiperTts

                voice = PiperTts(model_path(models, VOICE, "bench voice"), threads=2)
            samples = spoken(voice, *with_pauses(parts))
            write_wav(path, samples, RATE_HZ)
            logger.info("synthesised %r into %s", text, path)
        out.append(Utterance(text, samples, true_speech_end(samples)))
    return out


def turn_utterances(cache: Path, models: Path) -> list[Utterance]:
    """:data:`TURN_COMMANDS` in each of :data:`TURN_VOICES`, after the wake phrase in one
    breath for espeak-ng voices (piper's: a short pause, as :func:`spoken_commands`)."""
    from konak.bench.eval_corpus import (
        LEAD_SECONDS,
        TAIL_SECONDS,
        Case,
        Synthesizer,
        parse_voices,
    )
    from konak.bench.eval_corpus import Kind as CaseKind

    texts = [text for text, _ in TURN_COMMANDS]
    expected = dict(TURN_COMMANDS)
    out: list[Utterance] = []
    for label in TURN_VOICES:
        if label == "piper":
            out += [
                Utterance(u.text, u.samples, u.speech_end_sample, "piper", expected[u.text])
                for u in spoken_commands(cache, models, texts=texts)
            ]
            continue
        (voice,) = parse_voices(label)
        synth = Synthesizer(cache / "espeak")
        lead, tail = round(LEAD_SECONDS * RATE_HZ), round(TAIL_SECONDS * RATE_HZ)
        for text in texts:
            case = Case(CaseKind.COMMAND, text.rstrip("."), expected[text])
            samples, _ = read_wav(synth.path(voice, case))
            speech = samples[lead : samples.size - tail]
            out.append(Utterance(text, speech, true_speech_end(speech), label, expected[text]))
    return out


class PacedMic:
    """A microphone played in real time: 80 ms chunks delivered when they would be fully
    recorded; silence when nothing is queued. ``feed`` returns the monotonic time at which
    each sample index of the fed audio is (will be) recorded."""

    live = True  # paced by its own clock: the daemon captures it from a thread of its own

    def __init__(self) -> None:
        self._queue: queue.Queue[Samples] = queue.Queue()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._next_at = 0.0  # when the next chunk is due
        self._pending = 0  # chunks queued but not yet delivered
        self.delivered = 0
        self.started = threading.Event()

    def feed(self, samples: Samples) -> float:
        """Queue audio; returns the monotonic time its first sample is recorded."""
        pieces = [samples[i : i + CHUNK_SAMPLES] for i in range(0, samples.size, CHUNK_SAMPLES)]
        with self._lock:
            starts_at = self._next_at + self._pending * CHUNK_SECONDS
            self._pending += len(pieces)
        for piece in pieces:
            if piece.size < CHUNK_SAMPLES:
                piece = np.concatenate([piece, np.zeros(CHUNK_SAMPLES - piece.size, np.int16)])
            self._queue.put(piece)
        return starts_at

    def chunks(self) -> Iterator[AudioChunk]:
        silence = np.zeros(CHUNK_SAMPLES, np.int16)
        start = time.monotonic()
        self.started.set()
        index = 0
        while True:
            due = start + (index + 1) * CHUNK_SECONDS
            with self._lock:
                self._next_at = due - CHUNK_SECONDS
            # Pacing like a sound card: the chunk exists only once it has been recorded.
            if self._closed.wait(max(0.0, due - time.monotonic())):
                return
            try:
                samples = self._queue.get_nowait()
                with self._lock:
                    self._pending -= 1
            except queue.Empty:
                samples = silence
            self.delivered += 1
            yield AudioChunk(samples, index * CHUNK_SECONDS)
            index += 1

    def close(self) -> None:
        self._closed.set()


@dataclass
class RecordingSink:
    """A sink that records when each utterance's first sample arrives (monotonic)."""

    plays: list[tuple[float, int, int]] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def play(self, samples: Samples, rate_hz: int) -> None:
        with self._cond:
            self.plays.append((time.monotonic(), int(samples.size), rate_hz))
            self._cond.notify_all()

    def first_after(self, at: float, *, skip: int = 0) -> float | None:
        """The time of the ``skip``-th utterance (0-based) that started after ``at``."""
        with self._cond:
            later = [t for t, _, _ in self.plays if t >= at]
        return later[skip] if len(later) > skip else None

    def close(self) -> None:
        """Nothing to release."""

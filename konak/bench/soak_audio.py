"""The soak's microphone: spoken lines synthesised once, played in a loop in real time."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from konak.bench.rig import VOICE, WAKE_PHRASE, with_pauses
from konak.daemon.audio import CHUNK_SAMPLES, RATE_HZ, AudioChunk, Samples, read_wav, write_wav
from konak.errors import KonakError

logger = logging.getLogger(__name__)

CHUNK_SECONDS: Final = CHUNK_SAMPLES / RATE_HZ
CLIP_CHUNKS: Final = 88  # 7.04 s per spoken line: 30 min of audio hold 255 turns
LEAD_SECONDS: Final = 1.0  # silence before each line
MIN_REPLY_SECONDS: Final = 3.0  # silence after each line, at least
WARMUP_SECONDS: Final = 2.0  # silence before the first line (the wake engine fills its window)
# A chunk read this late means the reading thread could not run for that long: a sound
# card's input buffer (PortAudio/ALSA: tens to a few hundred ms) would have overflowed.
STALL_SECONDS: Final = 0.25


class SoakError(KonakError):
    """The soak could not run."""

    code = "bench_soak"


@dataclass(frozen=True)
class Line:
    """One line of the script and the outcome a working device gives it."""

    text: str | None  # said after the wake phrase; None: the wake word alone
    expected: str

    @property
    def label(self) -> str:
        """How the line reads in the report."""
        if self.text is None:
            return WAKE_PHRASE.rstrip(",") + " (then nothing)"
        return f"{WAKE_PHRASE} {self.text}"


SCRIPT: Final = (
    Line("turn on the kitchen light.", "ok"),
    Line("turn off the bedroom lamp.", "ok"),
    Line("what time is it?", "local"),
    Line("the weather is nice today.", "not_understood"),
    Line(None, "no_speech"),
)


@dataclass(frozen=True)
class Clip:
    """A line as audio: lead silence, the speech, silence for the reply."""

    line: Line
    samples: Samples


def _speech(cache: Path, models: Path, line: Line, voice: list[Any]) -> Samples:
    parts = [WAKE_PHRASE, line.text] if line.text is not None else [WAKE_PHRASE.rstrip(",") + "."]
    key = hashlib.sha256(repr((VOICE, parts)).encode()).hexdigest()[:16]
    path = cache / f"soak-{key}.wav"
    if path.exists():
        return read_wav(path)[0]
    if not voice:
        from konak.daemon.engines import model_path
        from konak.daemon.tts import PiperTts

        voice.append(PiperTts(model_path(models, VOICE, "soak voice"), threads=2))
    from konak.daemon.tts import spoken

    samples = spoken(voice[0], *with_pauses(parts))
    write_wav(path, samples, RATE_HZ)
    logger.info("synthesised %r into %s", parts, path)
    return samples


def clips(cache: Path, models: Path, script: Sequence[Line] = SCRIPT) -> list[Clip]:
    """Each line as a clip of :data:`CLIP_CHUNKS` chunks; speech synthesised once into
    ``cache`` (piper without random variation, so every run hears the same audio)."""
    cache.mkdir(parents=True, exist_ok=True)
    ignore = cache / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    voice: list[Any] = []
    lead = np.zeros(round(LEAD_SECONDS * RATE_HZ), np.int16)
    out = []
    for line in script:
        speech = np.concatenate([lead, _speech(cache, models, line, voice)])
        room = CLIP_CHUNKS * CHUNK_SAMPLES - speech.size
        if room < MIN_REPLY_SECONDS * RATE_HZ:
            raise SoakError(
                f"{line.label!r} leaves less than {MIN_REPLY_SECONDS:g} s for the reply"
            )
        out.append(Clip(line, np.concatenate([speech, np.zeros(room, np.int16)])))
    return out


class LoopingSource:
    """A microphone playing ``clips`` in turn for ``seconds`` (whole clips), then silence
    until closed. Chunks are due at absolute monotonic deadlines, as a sound card delivers
    them, so a late wake-up is caught up rather than shifting the timeline."""

    live = True

    def __init__(
        self, clips: Sequence[Clip], seconds: float, *, warmup_seconds: float = WARMUP_SECONDS
    ) -> None:
        if not clips or any(c.samples.size % CHUNK_SAMPLES for c in clips):
            raise SoakError("clips must be whole chunks")
        self.clips = list(clips)
        self.playlist: list[int] = []  # the clip index of each clip played, in order
        total = 0.0
        for i in itertools.cycle(range(len(self.clips))):
            length = self.clips[i].samples.size / RATE_HZ
            if total + length > seconds + 1e-9:
                break
            self.playlist.append(i)
            total += length
        self.warmup_chunks = round(warmup_seconds / CHUNK_SECONDS)
        self.started = threading.Event()
        self.script_done = threading.Event()
        self.produced = 0
        self.max_lag_seconds = 0.0
        self.stalls = 0  # times the reader fell more than STALL_SECONDS behind
        self._starts: list[float] = []  # when each played clip's first sample was recorded
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @property
    def script_seconds(self) -> float:
        """The length of the script (clips only)."""
        return sum(self.clips[i].samples.size for i in self.playlist) / RATE_HZ

    def clip_at(self, at: float) -> int | None:
        """The number of the clip being played at monotonic time ``at`` (None: before)."""
        with self._lock:
            n = bisect.bisect_right(self._starts, at) - 1
        return n if n >= 0 else None

    def line_of(self, clip_no: int) -> Line:
        """The line of the ``clip_no``-th clip played."""
        return self.clips[self.playlist[clip_no]].line

    def clip_seconds_in(self, clip_no: int) -> float:
        """When the ``clip_no``-th clip started, in seconds since the first one."""
        with self._lock:
            return self._starts[clip_no] - self._starts[0]

    @property
    def clips_played(self) -> int:
        """How many clips have started."""
        with self._lock:
            return len(self._starts)

    def _script(self) -> Iterator[tuple[Samples, bool]]:
        silence = np.zeros(CHUNK_SAMPLES, np.int16)
        for _ in range(self.warmup_chunks):
            yield silence, False
        for i in self.playlist:
            samples = self.clips[i].samples
            for offset in range(0, samples.size, CHUNK_SAMPLES):
                yield samples[offset : offset + CHUNK_SAMPLES], offset == 0

    def chunks(self) -> Iterator[AudioChunk]:
        silence = np.zeros(CHUNK_SAMPLES, np.int16)
        script = self._script()
        stalled = False
        start = time.monotonic()
        self.started.set()
        for index in itertools.count():
            due = start + (index + 1) * CHUNK_SECONDS
            if self._closed.wait(max(0.0, due - time.monotonic())):
                return
            lag = time.monotonic() - due
            if lag > STALL_SECONDS and not stalled:
                self.stalls += 1
            stalled = lag > STALL_SECONDS
            self.max_lag_seconds = max(self.max_lag_seconds, lag)
            item = next(script, None)
            if item is None:
                self.script_done.set()
                samples = silence
            else:
                samples, clip_starts = item
                if clip_starts:
                    with self._lock:
                        self._starts.append(due - CHUNK_SECONDS)
            self.produced += 1
            yield AudioChunk(samples, index * CHUNK_SECONDS)

    def close(self) -> None:
        self._closed.set()


class CountingSink:
    """A speaker that plays nothing and counts what it was given."""

    def __init__(self) -> None:
        self.plays = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def play(self, samples: Samples, rate_hz: int) -> None:
        with self._lock:
            self.plays += 1
            self.seconds += samples.size / rate_hz

    def close(self) -> None:
        """Nothing to release."""

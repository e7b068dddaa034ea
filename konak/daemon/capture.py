"""Capture: a producer that keeps reading the microphone, whatever the stages are doing.

A live source (a microphone, a paced file, stdin from ``arecord``) is read by its own
thread into a bounded ring of chunks. The consumer (the audio loop) takes chunks from
the ring; if it falls behind by more than the ring holds, the oldest chunks are dropped
and counted, and the burst is logged once. Chunks are stamped from the number of
samples read from the source, so a stall never shifts the timeline.

A source that is not live (a file read as fast as possible, a test feeding audio on
cue) has no deadline to miss: the consumer pulls from it directly, and nothing can be
dropped. A live source that delivers audio faster than real time (ALSA's ``file`` PCM
over a ``null`` device, a pipe from a file) cannot be a microphone running on its own
clock: when the ring is full the producer waits for room instead of dropping.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from konak.daemon.audio import CHUNK_SAMPLES, RATE_HZ, AudioChunk, AudioSource

logger = logging.getLogger(__name__)

RING_SECONDS: Final = 10.0  # how far the audio loop may fall behind before audio is dropped
CHUNK_SECONDS: Final = CHUNK_SAMPLES / RATE_HZ
POLL_SECONDS: Final = 0.25
# How far ahead of the wall clock a microphone may deliver (its driver's buffering).
MICROPHONE_SLACK_SECONDS: Final = 0.5  # the consumer wakes at least this often (watchdog, stop)


@dataclass(frozen=True)
class CaptureStats:
    """What capture has seen so far."""

    chunks: int
    dropped_chunks: int
    overflow_bursts: int
    source_overflows: int


def is_live(source: AudioSource) -> bool:
    """Whether ``source`` produces audio in real time (and so can overflow)."""
    return bool(getattr(source, "live", False))


class Capture:
    """Chunks from ``source``, stamped by sample count; a ring thread for live sources."""

    def __init__(self, source: AudioSource, *, ring_seconds: float = RING_SECONDS) -> None:
        self.source = source
        self.live = is_live(source)
        self._ring: collections.deque[AudioChunk] = collections.deque()
        self._capacity = max(1, round(ring_seconds * RATE_HZ / CHUNK_SAMPLES))
        self._cond = threading.Condition()
        self._ended = False
        self._closed = False
        self._samples = 0
        self._chunks = 0
        self._dropped = 0
        self._bursts = 0
        self._in_burst = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()

    @property
    def stats(self) -> CaptureStats:
        """Counters for telemetry and the soak report."""
        with self._cond:
            return CaptureStats(
                self._chunks,
                self._dropped,
                self._bursts,
                int(getattr(self.source, "overflows", 0)),
            )

    @property
    def error(self) -> BaseException | None:
        """Why a live source stopped producing, if it failed."""
        with self._cond:
            return self._error

    def _stamp(self, chunk: AudioChunk) -> AudioChunk:
        stamped = AudioChunk(chunk.samples, self._samples / RATE_HZ)
        self._samples += chunk.samples.size
        self._chunks += 1
        return stamped

    # ------------------------------------------------------------------ producer
    def start(self) -> None:
        """Start the producer thread (live sources only)."""
        if self.live and self._thread is None:
            self._thread = threading.Thread(target=self._produce, name="konak-capture", daemon=True)
            self._thread.start()

    def _ahead_of_real_time(self) -> bool:
        """Whether the source has delivered more audio than time has passed, by more than
        the ring holds: it is not being paced by a clock of its own."""
        heard = self._samples / RATE_HZ
        slack = min(MICROPHONE_SLACK_SECONDS, self._capacity * CHUNK_SECONDS / 2)
        return heard - (time.monotonic() - self._started) > slack

    def _produce(self) -> None:
        self._started = time.monotonic()
        try:
            for chunk in self.source.chunks():
                with self._cond:
                    while (
                        len(self._ring) >= self._capacity
                        and not self._closed
                        and self._ahead_of_real_time()
                    ):
                        self._cond.wait(POLL_SECONDS)
                    if self._closed:
                        break
                    if len(self._ring) >= self._capacity:
                        self._ring.popleft()
                        self._dropped += 1
                        if not self._in_burst:
                            self._in_burst = True
                            self._bursts += 1
                            logger.warning(
                                "the audio loop fell %.1fs behind: dropping audio "
                                "(%d chunks dropped so far)",
                                self._capacity * CHUNK_SECONDS,
                                self._dropped,
                            )
                    elif self._in_burst and len(self._ring) < self._capacity // 2:
                        self._in_burst = False
                    self._ring.append(self._stamp(chunk))
                    self._cond.notify_all()
        except Exception as exc:  # the producer's supervisor: hand the failure to the consumer
            logger.exception("the audio source failed")
            with self._cond:
                self._error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    # ------------------------------------------------------------------ consumer
    def chunks(self) -> Iterator[AudioChunk | None]:
        """Chunks in order; ``None`` at least every :data:`POLL_SECONDS` while waiting
        (live sources), so the consumer can ping the watchdog and see a stop request."""
        if not self.live:
            for chunk in self.source.chunks():
                with self._cond:
                    if self._closed:
                        return
                    stamped = self._stamp(chunk)
                yield stamped
            return
        self.start()
        while True:
            with self._cond:
                if not self._ring and not self._ended and not self._closed:
                    self._cond.wait(POLL_SECONDS)
                if self._closed:
                    return
                taken = self._ring.popleft() if self._ring else None
                ended = self._ended and not self._ring
            if taken is not None:
                with self._cond:
                    self._cond.notify_all()  # room in the ring for a waiting producer
                yield taken
            elif ended:
                return
            else:
                yield None

    def close(self) -> None:
        """Stop capturing; the consumer's iterator ends."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.source.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

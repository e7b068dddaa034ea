"""Capture: a live source is never made to wait; what the loop cannot take is counted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from konak.daemon.audio import CHUNK_SAMPLES, AudioChunk
from konak.daemon.capture import Capture


class Burst:
    """A live source that yields ``count`` numbered chunks as fast as it can (``paced``:
    each when its 80 ms have passed, like a microphone), then ends."""

    live = True

    def __init__(self, count: int, *, paced: bool = False) -> None:
        self.count = count
        self.paced = paced
        self.done = threading.Event()

    def chunks(self) -> Iterator[AudioChunk]:
        started = time.monotonic()
        for i in range(self.count):
            if self.paced:
                self.done.wait(max(0.0, started + (i + 1) * 0.08 - time.monotonic()))
            # Stamped wrongly on purpose: capture stamps by its own sample count.
            yield AudioChunk(np.full(CHUNK_SAMPLES, i, np.int16), 99.0)
        self.done.set()

    def close(self) -> None:
        """Nothing to release."""


class Files(Burst):
    live = False


def test_a_microphone_fills_the_ring_while_the_loop_is_busy_and_drops_are_counted() -> None:
    source = Burst(20, paced=True)
    capture = Capture(source, ring_seconds=0.48)  # six chunks
    capture.start()
    assert source.done.wait(10)  # the producer never waited for the consumer
    got = [c for c in capture.chunks() if c is not None]
    stats = capture.stats
    assert (stats.chunks, stats.dropped_chunks, stats.overflow_bursts) == (20, 14, 1)
    # The newest six were kept, each stamped where it was in the stream.
    assert [int(c.samples[0]) for c in got] == list(range(14, 20))
    assert [c.start_seconds for c in got] == pytest.approx([i * 0.08 for i in range(14, 20)])


def test_a_live_source_that_the_loop_keeps_up_with_drops_nothing() -> None:
    capture = Capture(Burst(40), ring_seconds=10.0)
    got = [c for c in capture.chunks() if c is not None]
    assert len(got) == 40
    assert capture.stats.dropped_chunks == 0


def test_a_file_is_read_by_the_loop_itself_and_stamped_by_sample_count() -> None:
    capture = Capture(Files(5))
    got = list(capture.chunks())
    assert [c.start_seconds for c in got if c is not None] == pytest.approx(
        [0.0, 0.08, 0.16, 0.24, 0.32]
    )
    assert capture.stats.dropped_chunks == 0


def test_closing_capture_ends_the_loop_s_iteration() -> None:
    class Endless:
        live = True

        def __init__(self) -> None:
            self.closed = threading.Event()

        def chunks(self) -> Iterator[AudioChunk]:
            while not self.closed.wait(0.01):
                yield AudioChunk(np.zeros(CHUNK_SAMPLES, np.int16), 0.0)

        def close(self) -> None:
            self.closed.set()

    source = Endless()
    capture = Capture(source)
    iterator = capture.chunks()
    next(iterator)
    capture.close()
    rest = list(iterator)  # ends instead of blocking (the suite's timeout would fail it)
    assert len(rest) <= 1
    assert source.closed.is_set()
    assert capture._thread is not None
    assert not capture._thread.is_alive()


def test_a_live_source_faster_than_real_time_waits_for_the_loop_instead_of_dropping() -> None:
    source = Burst(400)  # 32 s of audio delivered at once: no microphone can do that
    capture = Capture(source, ring_seconds=0.8)
    got = [c for c in capture.chunks() if c is not None]
    assert len(got) == 400
    assert capture.stats.dropped_chunks == 0

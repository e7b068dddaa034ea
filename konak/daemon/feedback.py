"""The speaker: earcons and speech played in order from one thread, interruptible."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from konak.daemon.audio import RATE_HZ, AudioSink, tone
from konak.daemon.tts import TtsEngine

logger = logging.getLogger(__name__)

EARCONS: Final = {
    "ack": np.concatenate([tone(880, 0.08), tone(1320, 0.08)]),
    "error": np.concatenate([tone(440, 0.12), tone(330, 0.18)]),
    "timer": np.concatenate([tone(988, 0.15), np.zeros(800, np.int16)] * 3),
}


class Playback:
    """One queued utterance; :meth:`wait` returns once it has played, was interrupted or
    dropped (``stop``), or failed. Every playback completes exactly once."""

    def __init__(self, text: str | None, earcon: str | None) -> None:
        self.text, self.earcon = text, earcon
        self.sentences = 0
        self.interrupted = False
        self.error: str | None = None
        self._done = threading.Event()

    @property
    def done(self) -> bool:
        """Whether the playback has completed."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for completion; False if ``timeout`` passed first."""
        return self._done.wait(timeout)

    def _complete(self, *, interrupted: bool = False, error: str | None = None) -> None:
        self.interrupted = self.interrupted or interrupted
        self.error = self.error or error
        self._done.set()


@dataclass(frozen=True)
class _Item:
    playback: Playback
    generation: int
    on_done: Callable[[Playback], None] | None = None


class Speaker:
    """Plays utterances in order from one thread; ``busy`` is set from the moment one is
    queued until all are played, ``speaking`` while speech (not an earcon) is queued or
    playing: the wake word is not listened for then, the device must not wake itself.
    Emits no events: the run (or the caller) does."""

    def __init__(self, sink: AudioSink, tts: TtsEngine, *, earcons: bool) -> None:
        self.sink, self.tts, self.earcons = sink, tts, earcons
        self.busy = threading.Event()
        self.speaking = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self._speech = 0
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._lock = threading.Lock()
        self._pending = 0
        self._generation = 0  # bumped by stop(): what was queued before it is not played
        self._thread = threading.Thread(target=self._loop, name="konak-speaker", daemon=True)
        self._thread.start()

    def say(self, text: str, on_done: Callable[[Playback], None] | None = None) -> Playback:
        """Speak ``text`` sentence by sentence."""
        return self._put(Playback(text, None), on_done)

    def earcon(self, name: str) -> Playback | None:
        """Play the ``ack``, ``error`` or ``timer`` sound (unless earcons are off)."""
        if self.earcons or name == "timer":
            return self._put(Playback(None, name), None)
        return None

    def set_tts(self, tts: TtsEngine) -> None:
        """Use another voice from the next utterance on."""
        self.tts = tts

    def _put(self, playback: Playback, on_done: Callable[[Playback], None] | None) -> Playback:
        with self._lock:
            self._pending += 1
            if playback.text is not None:
                self._speech += 1
                self.speaking.set()
            self.busy.set()
            self.idle.clear()
            generation = self._generation
        self._queue.put(_Item(playback, generation, on_done))
        return playback

    def stop(self) -> None:
        """Stop what is playing and drop what is queued; each dropped playback completes
        as interrupted, so whoever waits for it goes on."""
        with self._lock:
            self._generation += 1
        dropped: list[_Item] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            dropped.append(item)
        for item in dropped:
            self._finish(item, interrupted=True)

    def close(self) -> None:
        """Finish the thread (after what is queued)."""
        self._queue.put(None)
        self._thread.join(timeout=5.0)

    def _finish(self, item: _Item, *, interrupted: bool = False, error: str | None = None) -> None:
        item.playback._complete(interrupted=interrupted, error=error)
        if item.on_done is not None:
            try:
                item.on_done(item.playback)
            except Exception:  # a callback wrapper: the speaker must keep playing
                logger.exception("a playback callback failed")
        with self._lock:
            self._pending -= 1
            if item.playback.text is not None:
                self._speech -= 1
                if self._speech == 0:
                    self.speaking.clear()
            if self._pending == 0:
                self.busy.clear()
                self.idle.set()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._stopped_since(item):
                self._finish(item, interrupted=True)
                continue
            try:
                self._play(item)
            except Exception as exc:  # the speaker's supervisor: log, keep the device alive
                logger.exception("playback failed")
                self._finish(item, error=f"{type(exc).__name__}: {exc}")
            else:
                self._finish(item, interrupted=self._stopped_since(item))

    def _stopped_since(self, item: _Item) -> bool:
        with self._lock:
            return self._generation != item.generation

    def _play(self, item: _Item) -> None:
        playback = item.playback
        if playback.earcon is not None:
            self.sink.play(EARCONS[playback.earcon], RATE_HZ)
            return
        assert playback.text is not None
        for samples, rate in self.tts.sentences(playback.text):
            if self._stopped_since(item):
                break
            self.sink.play(samples, rate)
            playback.sentences += 1

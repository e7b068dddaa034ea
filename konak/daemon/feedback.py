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
from konak.daemon.events import Event, EventBus, Stage
from konak.daemon.tts import TtsEngine

logger = logging.getLogger(__name__)

EARCONS: Final = {
    "ack": np.concatenate([tone(880, 0.08), tone(1320, 0.08)]),
    "error": np.concatenate([tone(440, 0.12), tone(330, 0.18)]),
    "timer": np.concatenate([tone(988, 0.15), np.zeros(800, np.int16)] * 3),
}


@dataclass(frozen=True)
class _Item:
    turn_id: str
    text: str | None = None
    earcon: str | None = None
    on_done: Callable[[], None] | None = None


class Speaker:
    """Plays utterances; ``busy`` is set from the moment one is queued until all are played."""

    def __init__(self, sink: AudioSink, tts: TtsEngine, bus: EventBus, *, earcons: bool) -> None:
        self.sink, self.tts, self.bus, self.earcons = sink, tts, bus, earcons
        self.busy = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._interrupt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="konak-speaker", daemon=True)
        self._thread.start()

    def say(self, text: str, turn_id: str, on_done: Callable[[], None] | None = None) -> None:
        """Speak ``text`` sentence by sentence."""
        self._put(_Item(turn_id, text=text, on_done=on_done))

    def earcon(self, name: str, turn_id: str) -> None:
        """Play the ``ack``, ``error`` or ``timer`` sound."""
        if self.earcons or name == "timer":
            self._put(_Item(turn_id, earcon=name))

    def _put(self, item: _Item) -> None:
        self.busy.set()
        self.idle.clear()
        self._queue.put(item)

    def stop(self) -> None:
        """Stop what is playing and drop what is queued."""
        self._interrupt.set()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break

    def close(self) -> None:
        """Finish the thread (after what is queued)."""
        self._queue.put(None)
        self._thread.join(timeout=5.0)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._interrupt.clear()
            try:
                self._play(item)
            except Exception:  # the speaker's supervisor: log, keep the device alive
                logger.exception("playback failed")
                self.bus.emit(Event("error", item.turn_id, {"code": "playback_failed"}))
            if item.on_done is not None:
                item.on_done()
            if self._queue.empty():
                self.busy.clear()
                self.idle.set()

    def _play(self, item: _Item) -> None:
        if item.earcon is not None:
            self.sink.play(EARCONS[item.earcon], RATE_HZ)
            return
        assert item.text is not None
        self.bus.emit(Event(f"{Stage.TTS}-start", item.turn_id, {"text": item.text}))
        sentences = 0
        for samples, rate in self.tts.sentences(item.text):
            if self._interrupt.is_set():
                break
            self.sink.play(samples, rate)
            sentences += 1
        interrupted = self._interrupt.is_set()
        self.bus.emit(
            Event(
                f"{Stage.TTS}-end",
                item.turn_id,
                {"text": item.text, "sentences": sentences, "interrupted": interrupted},
            )
        )

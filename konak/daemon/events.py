"""The typed events a voice turn emits; MQTT, feedback, metrics and logs subscribe to them."""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


class Stage(enum.StrEnum):
    """The ordered stages of a turn."""

    WAKE = "wake"
    VAD = "vad"
    STT = "stt"
    INTENT = "intent"
    HUB = "hub"
    TTS = "tts"


STAGE_ORDER: tuple[Stage, ...] = tuple(Stage)


@dataclass(frozen=True)
class Event:
    """``<stage>-start`` / ``<stage>-end``, ``run-start`` / ``run-end`` or ``error``."""

    type: str
    turn_id: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


Subscriber = Callable[[Event], None]


class EventBus:
    """Delivers each event to every subscriber; a failing subscriber is logged, not fatal."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def emit(self, event: Event) -> None:
        """Send ``event`` to every subscriber."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:  # a subscriber wrapper: one bad subscriber must not stop a turn
                logger.exception("event subscriber failed on %s", event.type)

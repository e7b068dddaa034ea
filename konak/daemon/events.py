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


class EventLog:
    """A subscriber that keeps every event, with a bounded wait for one (for
    ``konak bench``, the soak and tests: never a sleep)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float) -> Event | None:
        """The first event, already seen or still to come, matching ``predicate``; None
        after ``timeout`` seconds."""
        found: list[Event] = []

        def match() -> bool:
            found[:] = [e for e in self.events if predicate(e)]
            return bool(found)

        with self._cond:
            self._cond.wait_for(match, timeout)
        return found[0] if found else None

    def wait_until(self, condition: Callable[[list[Event]], bool], timeout: float) -> bool:
        """Wait until ``condition`` holds over all events so far; whether it did."""
        with self._cond:
            return self._cond.wait_for(lambda: condition(self.events), timeout)

    def types(self) -> list[str]:
        """The event types so far, in order."""
        with self._cond:
            return [e.type for e in self.events]

    def of(self, turn_id: str) -> dict[str, Event]:
        """The first event of each type of one turn."""
        with self._cond:
            out: dict[str, Event] = {}
            for e in self.events:
                if e.turn_id == turn_id:
                    out.setdefault(e.type, e)
            return out

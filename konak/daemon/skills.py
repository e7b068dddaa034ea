"""Skills answered on the device, also while the hub is unreachable: time, date, timers."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

logger = logging.getLogger(__name__)

LOCAL_INTENTS: Final = frozenset(
    {
        "HassGetCurrentTime",
        "HassGetCurrentDate",
        "HassStartTimer",
        "HassCancelTimer",
        "HassTimerStatus",
    }
)


@dataclass
class _Timer:
    ends_at: float
    handle: threading.Timer


def _duration(seconds: float) -> str:
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "hour"), (minutes, "minute"), (secs, "second")]
    words = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n]
    return " and ".join(words) or "0 seconds"


def _number(value: object) -> float:
    try:
        return float(str(value))
    except ValueError:
        return 0.0


class LocalSkills:
    """Answers local intents; ``on_timer_done`` runs when a timer ends."""

    def __init__(
        self, on_timer_done: Callable[[], None], now: Callable[[], dt.datetime] | None = None
    ) -> None:
        self.on_timer_done = on_timer_done
        self.now = now or dt.datetime.now
        self._timers: list[_Timer] = []
        self._lock = threading.Lock()

    def handles(self, intent: str) -> bool:
        """Whether ``intent`` is answered on the device."""
        return intent in LOCAL_INTENTS

    def answer(self, intent: str, slots: dict[str, str | int | float | bool]) -> str:
        """The spoken answer to a local intent."""
        if intent == "HassGetCurrentTime":
            return f"It is {self.now().strftime('%H:%M')}."
        if intent == "HassGetCurrentDate":
            return f"Today is {self.now().strftime('%A, %B %d, %Y').replace(' 0', ' ')}."
        if intent == "HassStartTimer":
            seconds = (
                _number(slots.get("hours", 0)) * 3600
                + _number(slots.get("minutes", 0)) * 60
                + _number(slots.get("seconds", 0))
            )
            if seconds <= 0:
                return "How long should the timer be?"
            self.start_timer(seconds)
            return f"Timer set for {_duration(seconds)}."
        if intent == "HassCancelTimer":
            return "Timer cancelled." if self.cancel_all() else "There is no timer running."
        remaining = self.remaining()
        if not remaining:
            return "There is no timer running."
        return f"{_duration(min(remaining))} left on your timer."

    def start_timer(self, seconds: float) -> None:
        """Start a timer of ``seconds``."""
        handle = threading.Timer(seconds, self._done)
        handle.daemon = True
        with self._lock:
            self._timers.append(_Timer(time.monotonic() + seconds, handle))
        handle.start()

    def _done(self) -> None:
        with self._lock:
            now = time.monotonic()
            self._timers = [t for t in self._timers if t.ends_at > now + 0.001]
        logger.info("a timer ended")
        self.on_timer_done()

    def cancel_all(self) -> int:
        """Cancel every timer; returns how many there were."""
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.handle.cancel()
        return len(timers)

    def remaining(self) -> list[float]:
        """Seconds left on each running timer."""
        now = time.monotonic()
        with self._lock:
            return [t.ends_at - now for t in self._timers if t.ends_at > now]

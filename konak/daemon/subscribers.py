"""What listens to a run's events: the hub (wake), earcons, systemd status, latencies, logs.

None of this is called from the stages: each is subscribed to the daemon's event bus,
so a stage does its one job and a failing subscriber is logged without touching the turn.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

from konak.daemon.events import Event, Stage
from konak.daemon.feedback import Speaker
from konak.daemon.notify import Notifier
from konak.daemon.settings import DeviceSettings
from konak.daemon.vad import Endpoint
from konak.protocol import Message, Wake

logger = logging.getLogger(__name__)

ENDPOINTS_HEARD: Final = (Endpoint.END.value, Endpoint.TOO_LONG.value)

# The daemon's state (systemd STATUS= and `konak daemon` messages) after each event.
STATES: Final = {
    "run-start": "listening-command",
    f"{Stage.STT}-start": "listening-command",
    f"{Stage.VAD}-end": "transcribing",
    f"{Stage.INTENT}-start": "recognising",
    f"{Stage.HUB}-start": "waiting for the hub",
    f"{Stage.TTS}-start": "speaking",
    "run-end": "listening",
}


class WakePublisher:
    """Tells the hub about each wake word (for arbitration between devices)."""

    def __init__(self, device: DeviceSettings, publish: Callable[[Message], None]) -> None:
        self.device, self.publish = device, publish

    def __call__(self, event: Event) -> None:
        if event.type != f"{Stage.WAKE}-end" or "word" not in event.data:
            return
        self.publish(
            Wake(
                tenant=self.device.tenant,
                device=self.device.device,
                turn_id=event.turn_id,
                wake_word=event.data["word"],
                score=float(event.data["score"]),
                area=self.device.area,
            )
        )


class Earcons:
    """The acknowledgement when the end of speech is found; the error sound on failure."""

    def __init__(self, speaker: Speaker) -> None:
        self.speaker = speaker

    def __call__(self, event: Event) -> None:
        if event.type == f"{Stage.VAD}-end" and event.data.get("endpoint") in ENDPOINTS_HEARD:
            self.speaker.earcon("ack")
        elif event.type == "error":
            self.speaker.earcon("error")


class SystemdStatus:
    """``STATUS=`` for systemd, and :attr:`state` for messages."""

    def __init__(self, notifier: Notifier, initial: str = "starting") -> None:
        self.notifier = notifier
        self.state = initial
        self._active: set[str] = set()
        self._lock = threading.Lock()

    def set(self, state: str) -> None:
        """Record and announce ``state``."""
        self.state = state
        self.notifier.notify(STATUS=state)

    def __call__(self, event: Event) -> None:
        state = STATES.get(event.type)
        if state is None:
            return
        with self._lock:
            if event.type == "run-start":
                self._active.add(event.turn_id)
            elif event.type == "run-end":
                self._active.discard(event.turn_id)
                if self._active:
                    return  # another turn is still going on
        self.set(state)


class Latencies:
    """The latest duration of each stage, for telemetry."""

    def __init__(self) -> None:
        self._latest: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        if not event.type.endswith("-end") or "duration_ms" not in event.data:
            return
        with self._lock:
            self._latest[event.type.removesuffix("-end")] = float(event.data["duration_ms"])

    def snapshot(self) -> dict[str, float]:
        """Stage -> milliseconds of its latest run."""
        with self._lock:
            return dict(self._latest)


class EventLogger:
    """One log line per turn milestone; every event at debug level."""

    def __call__(self, event: Event) -> None:
        data, turn = event.data, event.turn_id
        if event.type == f"{Stage.WAKE}-end":
            logger.info("turn %s: wake word %s (%.2f)", turn, data.get("word"), data.get("score"))
        elif event.type == f"{Stage.STT}-end":
            logger.info("turn %s: heard %r", turn, data.get("text", ""))
        elif event.type == f"{Stage.INTENT}-end":
            logger.info("turn %s: intent %s %s", turn, data.get("intent"), data.get("slots"))
        elif event.type == "error":
            logger.info("turn %s: failed with %s", turn, data.get("code"))
        elif event.type == "run-end":
            logger.info(
                "turn %s: ended%s", turn, " (interrupted)" if data.get("interrupted") else ""
            )
        else:
            logger.debug("turn %s: %s %s", turn, event.type, data)

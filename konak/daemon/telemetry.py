"""Periodic telemetry: CPU, RSS, temperature, stage latencies, model load times."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from konak.daemon.settings import DeviceSettings
from konak.protocol import Message, Telemetry

logger = logging.getLogger(__name__)


def temperature_celsius() -> float | None:
    """The hottest sensor the platform exposes, if any."""
    import psutil  # type: ignore[import-untyped]

    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return None
    try:
        sensors = read()
    except OSError:
        return None
    values = [t.current for group in sensors.values() for t in group if t.current is not None]
    return max(values) if values else None


@dataclass(frozen=True)
class DeviceFigures:
    """The daemon's own counters at one moment (the reporter adds the process's)."""

    queue_depth: int = 0
    dead_letters: int = 0
    expired_intents: int = 0
    dropped_audio_chunks: int = 0
    stage_latency_ms: dict[str, float] = field(default_factory=dict)
    model_load_seconds: dict[str, float] = field(default_factory=dict)


class TelemetryReporter:
    """Publishes a Telemetry message every ``interval_seconds`` from its own thread."""

    def __init__(
        self,
        device: DeviceSettings,
        figures: Callable[[], DeviceFigures],
        publish: Callable[[Message], None],
        interval_seconds: float,
    ) -> None:
        import psutil

        self.device = device
        self.figures = figures
        self.publish = publish
        self.interval_seconds = interval_seconds
        self._process = psutil.Process()
        self._process.cpu_percent()  # the first call only starts the measurement
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="konak-telemetry", daemon=True)

    def snapshot(self) -> Telemetry:
        """The current figures."""
        figures = self.figures()
        return Telemetry(
            tenant=self.device.tenant,
            device=self.device.device,
            uptime_seconds=time.monotonic() - self._started,
            cpu_percent=self._process.cpu_percent(),
            rss_bytes=self._process.memory_info().rss,
            temperature_celsius=temperature_celsius(),
            queue_depth=figures.queue_depth,
            dead_letters=figures.dead_letters,
            expired_intents=figures.expired_intents,
            dropped_audio_chunks=figures.dropped_audio_chunks,
            stage_latency_ms=figures.stage_latency_ms,
            model_load_seconds=figures.model_load_seconds,
        )

    def start(self) -> None:
        """Start reporting."""
        self._thread.start()

    def stop(self) -> None:
        """Stop reporting."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                self.publish(self.snapshot())
            except Exception:  # the reporter's supervisor: a failed report must not stop it
                logger.exception("telemetry failed")

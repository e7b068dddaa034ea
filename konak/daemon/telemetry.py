"""Periodic telemetry: CPU, RSS, temperature, stage latencies, model load times."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from konak.protocol import Telemetry

if TYPE_CHECKING:
    from konak.daemon.service import Daemon

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


class TelemetryReporter:
    """Publishes a Telemetry message every ``interval_seconds`` from its own thread."""

    def __init__(self, daemon: Daemon, interval_seconds: float) -> None:
        import psutil

        self.daemon = daemon
        self.interval_seconds = interval_seconds
        self._process = psutil.Process()
        self._process.cpu_percent()  # the first call only starts the measurement
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="konak-telemetry", daemon=True)

    def snapshot(self) -> Telemetry:
        """The current figures."""
        d = self.daemon.settings.device
        return Telemetry(
            tenant=d.tenant,
            device=d.device,
            uptime_seconds=time.monotonic() - self._started,
            cpu_percent=self._process.cpu_percent(),
            rss_bytes=self._process.memory_info().rss,
            temperature_celsius=temperature_celsius(),
            queue_depth=len(self.daemon.outbox),
            stage_latency_ms=dict(self.daemon.latency_ms),
            model_load_seconds=dict(self.daemon.engines.load_seconds),
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
                self.daemon.hub.publish(self.snapshot())
            except Exception:  # the reporter's supervisor: a failed report must not stop it
                logger.exception("telemetry failed")

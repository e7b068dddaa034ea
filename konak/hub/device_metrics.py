"""Per-device metrics for Prometheus, read from the store at scrape time: what each device
last reported in its status and telemetry. A collector, not gauges kept up to date, so a
device the store forgets leaves no stale series behind and nothing is counted twice."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from konak.hub.store import Store

DEVICE_LABELS: Final = ["tenant", "device", "area"]
# Telemetry fields exported as gauges: field -> (metric name, help).
_TELEMETRY: Final = {
    "cpu_percent": ("konak_device_cpu_percent", "CPU use, percent of one core (telemetry)"),
    "rss_bytes": ("konak_device_rss_bytes", "Resident memory of the daemon (telemetry)"),
    "temperature_celsius": ("konak_device_temperature_celsius", "SoC temperature (telemetry)"),
    "queue_depth": ("konak_device_queue_depth", "Intents waiting in the device's outbox"),
    "dead_letters": ("konak_device_dead_letters", "Intents the device gave up on, in total"),
}


class DeviceCollector(Collector):
    """``konak_device_*``: one series per device of every tenant."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> Iterator[Metric]:
        """Nothing at registration (the store may not be readable yet)."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """The families, filled from the store."""
        up = GaugeMetricFamily(
            "konak_device_up", "1 while the device's last status is online", labels=DEVICE_LABELS
        )
        error = GaugeMetricFamily(
            "konak_device_error",
            "1 while the device reports an error (the code as a label)",
            labels=[*DEVICE_LABELS, "code"],
        )
        seen = GaugeMetricFamily(
            "konak_device_last_seen_timestamp_seconds",
            "When the hub last heard from the device (Unix time)",
            labels=DEVICE_LABELS,
        )
        telemetry = {
            key: GaugeMetricFamily(name, text, labels=DEVICE_LABELS)
            for key, (name, text) in _TELEMETRY.items()
        }
        stage = GaugeMetricFamily(
            "konak_device_stage_latency_seconds",
            "The device's recent latency per pipeline stage (telemetry)",
            labels=[*DEVICE_LABELS, "stage"],
        )
        for tenant in self.store.tenants_with_devices():
            for device in self.store.devices(tenant):
                labels = [tenant, device.device_id, device.area or ""]
                up.add_metric(labels, 1.0 if device.state == "online" else 0.0)
                if device.state == "error":
                    error.add_metric([*labels, device.error or "unknown"], 1.0)
                seen.add_metric(labels, device.last_seen)
                latest = self.store.telemetry(tenant, device.device_id, limit=1)
                if not latest:
                    continue
                sample = latest[0]
                for key, family in telemetry.items():
                    value = sample.get(key)
                    if isinstance(value, int | float):
                        family.add_metric(labels, float(value))
                for name, ms in sorted((sample.get("stage_latency_ms") or {}).items()):
                    stage.add_metric([*labels, name], float(ms) / 1000.0)
        yield from (up, error, seen, *telemetry.values(), stage)

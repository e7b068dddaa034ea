"""The real Prometheus (Debian's package) scraping the real hub with its scrape token, with
Konak's alert rules loaded: a device that goes offline fires KonakDeviceOffline (issue 16).
The rules' ``for`` durations are shortened to a second; everything else is the shipped file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from konak.devtools.mosquitto import Mosquitto, free_port
from konak.hub.settings import HttpSettings
from konak.protocol import Status, Telemetry
from tests.integration.hub.conftest import Device, RunningHub, hub_settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus"),
]

RULES = Path(__file__).resolve().parents[3] / "monitoring" / "prometheus" / "konak-rules.yml"
TOKEN = "prometheus-scrape-token-0123456789abcdef"
WAIT_SECONDS = 60.0


class Prometheus:
    """A private Prometheus: scrapes the hub every second and evaluates the rules."""

    def __init__(self, tmp_path: Path, hub_port: int) -> None:
        self.port = free_port()
        rules = yaml.safe_load(RULES.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                rule["for"] = "1s"
        (tmp_path / "konak-rules.yml").write_text(yaml.safe_dump(rules))
        (tmp_path / "token").write_text(TOKEN)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["konak-rules.yml"],
            "scrape_configs": [
                {
                    "job_name": "konak-hub",
                    "authorization": {"credentials_file": str(tmp_path / "token")},
                    "static_configs": [{"targets": [f"127.0.0.1:{hub_port}"]}],
                }
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (tmp_path / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def api(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.load(answer)["data"]

    async def until(self, what: Callable[[], Any], timeout: float = WAIT_SECONDS) -> Any:
        """Poll ``what()`` (None or an error: not yet) until it gives something."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, KeyError, ValueError):
                got = await asyncio.to_thread(what)
                if got:
                    return got
            await asyncio.sleep(0.5)
        raise AssertionError(f"timed out; prometheus log:\n{self._log_tail()}")

    def alerts(self, name: str, state: str = "firing") -> list[dict[str, Any]]:
        found = self.api("alerts")["alerts"]
        return [a for a in found if a["labels"]["alertname"] == name and a["state"] == state]

    def value(self, query: str) -> list[dict[str, Any]]:
        return list(self.api(f"query?query={urllib.request.quote(query)}")["result"])

    def _log_tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-3000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[int], Prometheus]]:
    made: list[Prometheus] = []

    def start(hub_port: int) -> Prometheus:
        made.append(Prometheus(tmp_path / "prometheus", hub_port))
        return made[-1]

    (tmp_path / "prometheus").mkdir()
    yield start
    for running in made:
        running.stop()


async def test_a_device_going_offline_fires_the_alert_in_prometheus(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Callable[..., Any],
    devices: Callable[..., Device],
    prometheus: Callable[[int], Prometheus],
) -> None:
    hub: RunningHub = await hubs(
        hub_settings(broker, tmp_path, http=HttpSettings(metrics_token=TOKEN))
    )
    kitchen, hall = devices("kitchen-pi"), devices("hall-pi")
    await kitchen.online(area="kitchen")
    await hall.online(area="hall")
    await kitchen.send(
        Telemetry(
            tenant="acme", device="kitchen-pi", uptime_seconds=5, cpu_percent=12.5,
            rss_bytes=180_000_000, temperature_celsius=51.0, stage_latency_ms={"stt": 85.0},
        )
    )  # fmt: skip
    server = prometheus(hub.http_port)

    # Scraped with the token: both devices up, the telemetry there, the broker link up.
    up = await server.until(lambda: len(server.value("konak_device_up == 1")) == 2)
    assert up
    cpu = await server.until(lambda: server.value('konak_device_cpu_percent{device="kitchen-pi"}'))
    assert float(cpu[0]["value"][1]) == 12.5
    assert await server.until(lambda: server.value("konak_hub_broker_connected == 1"))
    assert server.alerts("KonakDeviceOffline") == []

    await kitchen.send(Status(tenant="acme", device="kitchen-pi", state="offline"))

    firing = await server.until(lambda: server.alerts("KonakDeviceOffline"))
    assert [a["labels"]["device"] for a in firing] == ["kitchen-pi"]
    assert firing[0]["labels"]["area"] == "kitchen"
    assert firing[0]["annotations"]["summary"] == "Konak device kitchen-pi (acme) is offline"
    assert server.alerts("KonakHubDown") == []

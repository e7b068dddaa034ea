"""A real hub process on a private broker, with konak-home over stdio: for the demo and
the benchmarks."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from konak.devtools.mosquitto import Mosquitto, free_port
from konak.devtools.zigbee import ZigbeeLights
from konak.errors import KonakError

READY_TIMEOUT_SECONDS: Final = 60.0
STOP_TIMEOUT_SECONDS: Final = 15.0


class LocalHubError(KonakError):
    """The local hub did not start."""

    code = "local_hub"


@dataclass(frozen=True, slots=True)
class LocalHub:
    """A running hub process."""

    process: subprocess.Popen[bytes]
    http_port: int
    config_path: Path
    stderr_path: Path

    def stderr_tail(self, lines: int = 10) -> str:
        """The last lines the hub wrote to stderr."""
        text = self.stderr_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def write_configs(
    work: Path,
    broker: Mosquitto,
    tenant: str,
    lights: Sequence[tuple[str, str | None]],
    *,
    log_level: str = "WARNING",
) -> Path:
    """Write hub.toml and konak-home's home.toml into ``work``; returns hub.toml."""
    home = work / "home.toml"
    entities = "".join(
        f'\n[[entities]]\nname = "{name}"\n' + (f'area = "{area}"\n' if area else "")
        for name, area in lights
    )
    home.write_text(
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        f'username = "{broker.admin.username}"\npassword_env = "KONAK_HOME_MQTT_PASSWORD"\n'
        + entities
    )
    hub = work / "hub.toml"
    hub.write_text(
        f"""
[hub]
database_path = "{work / "hub.sqlite3"}"
http_host = "127.0.0.1"
http_port = {free_port()}
log_level = "{log_level}"

[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "{broker.admin.username}"
password_env = "KONAK_HUB_MQTT_PASSWORD"
client_id = "konak-hub-local"

[fleet_mcp]
enabled = false

[tenants.{tenant}]

[[tenants.{tenant}.mcp_servers]]
name = "home"
command = "{sys.executable}"
args = ["-m", "konak.hub.mcp_servers.home", "--config", "{home}"]
pass_env = ["KONAK_HOME_MQTT_PASSWORD"]
timeout_seconds = 10.0
read_only_tools = ["HassGetState"]
"""
    )
    return hub


def _http_port(config: Path) -> int:
    for line in config.read_text().splitlines():
        if line.startswith("http_port"):
            return int(line.split("=")[1])
    raise LocalHubError(f"{config}: no http_port")


def _healthy(port: int) -> bool:
    with contextlib.suppress(OSError):
        url = f"http://127.0.0.1:{port}/healthz"
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    return False


@contextlib.contextmanager
def local_hub(
    work: Path, broker: Mosquitto, tenant: str, lights: Sequence[tuple[str, str | None]]
) -> Iterator[LocalHub]:
    """Start ``konak hub run`` on ``broker`` and yield once it is healthy; stop it after.
    Simulated Zigbee2MQTT devices answer konak-home's commands with their new state."""
    config = write_configs(work, broker, tenant, lights)
    devices = ZigbeeLights(broker).start()
    env = {
        **os.environ,
        "KONAK_HUB_MQTT_PASSWORD": broker.admin.password,
        "KONAK_HOME_MQTT_PASSWORD": broker.admin.password,
    }
    stderr_path = work / "hub.err"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
            [sys.executable, "-m", "konak.cli", "hub", "run", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    hub = LocalHub(proc, _http_port(config), config, stderr_path)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not _healthy(hub.http_port):
            if proc.poll() is not None:
                raise LocalHubError(f"the hub exited with {proc.returncode}: {hub.stderr_tail()}")
            if time.monotonic() > deadline:
                raise LocalHubError("the hub did not become healthy in time")
            time.sleep(0.1)  # readiness poll of a child process
        yield hub
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        devices.close()

"""A real `konak daemon run` process: a successful SIGHUP reload, and the last will."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from konak.devtools.mosquitto import Mosquitto
from konak.devtools.probe import MqttProbe, ProbeError, Received
from konak.protocol import Intent, Kind, Status, subscription
from tests.conftest import ProbeFactory

from .conftest import SLOT_LISTS, Speech, daemon_config, to_toml

pytestmark = pytest.mark.integration

KONAK = [sys.executable, "-m", "konak.cli"]


class Notifications:
    """The daemon's sd_notify datagrams, read from a test socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lines: list[str] = []

    def wait(self, line: str) -> None:
        while line not in self.lines:
            try:
                self.lines += self.sock.recv(4096).decode().splitlines()
            except TimeoutError:
                raise AssertionError(f"no {line!r} from the daemon: {self.lines}") from None


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, Notifications]]:
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(60)
        yield address, Notifications(sock)


def _spawn(config: Path, address: str, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [*KONAK, "daemon", "run", "--config", str(config)],
        env={**os.environ, "NOTIFY_SOCKET": address},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **kwargs,
    )


def _finish(proc: subprocess.Popen[bytes]) -> str:
    """Wait for a killed (or finished) process; its output."""
    assert proc.stdout is not None
    output = proc.stdout.read().decode()
    proc.stdout.close()
    if proc.stdin is not None and not proc.stdin.closed:
        proc.stdin.close()
    proc.wait(timeout=10)
    return output


def _next_or_none(hub: MqttProbe) -> Received | None:
    try:
        return hub.next(timeout=60)
    except ProbeError:
        return None


def test_a_sighup_reload_applies_new_slot_lists_and_is_reported(
    broker: Mosquitto,
    mqtt_probe: ProbeFactory,
    notify_socket: tuple[str, Notifications],
    speech: Speech,
    tmp_path: Path,
    models_dir: Path,
) -> None:
    address, notes = notify_socket
    hub = mqtt_probe()
    hub.subscribe(subscription(Kind.INTENT))
    config = tmp_path / "daemon.toml"
    raw = daemon_config(broker, tmp_path, models_dir, audio={"source": "stdin", "sink": "none"})
    config.write_text(to_toml(raw))
    proc = _spawn(config, address, stdin=subprocess.PIPE)
    try:
        notes.wait("READY=1")
        garage = {"name": SLOT_LISTS["name"], "area": [*SLOT_LISTS["area"], "garage"]}
        raw["intent"] = {"slot_lists": garage}
        config.write_text(to_toml(raw))
        proc.send_signal(signal.SIGHUP)
        notes.wait("STATUS=config reloaded; listening")
        assert proc.stdin is not None
        command = speech(1.0, "Hey Jarvis,", 0.3, "turn on the garage light.", 1.5)
        proc.stdin.write(command.astype("<i2").tobytes())
        proc.stdin.flush()
        received = _next_or_none(hub)
        proc.send_signal(signal.SIGTERM)  # stdin stays open: the poll lets SIGTERM through
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        output = _finish(proc)
    assert received is not None, output
    intent = Intent.from_payload(received.payload, topic=received.topic)
    assert intent.intent == "HassTurnOn"
    # "garage" was in no slot list before the reload: the grammar would have rejected it.
    assert intent.slots == {"area": "garage", "domain": "light"}, intent.text
    assert notes.lines.index("RELOADING=1") < notes.lines.index("STATUS=config reloaded; listening")
    assert f"config reloaded from {config}" in output


def test_a_killed_daemon_is_reported_offline_by_its_last_will(
    broker: Mosquitto,
    mqtt_probe: ProbeFactory,
    notify_socket: tuple[str, Notifications],
    tmp_path: Path,
    models_dir: Path,
) -> None:
    address, notes = notify_socket
    hub = mqtt_probe()
    hub.subscribe(subscription(Kind.STATUS))
    config = tmp_path / "daemon.toml"
    raw = daemon_config(broker, tmp_path, models_dir, audio={"source": "none", "sink": "none"})
    config.write_text(to_toml(raw))
    proc = _spawn(config, address)
    try:
        notes.wait("READY=1")
        online = hub.next(timeout=60)
        assert Status.from_payload(online.payload, topic=online.topic).state == "online"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        will = hub.next(timeout=30)
    finally:
        proc.kill()
        _finish(proc)
    status = Status.from_payload(will.payload, topic=will.topic)
    assert (status.device, status.state) == ("kitchen-pi", "offline")
    late = mqtt_probe()  # a subscriber that comes later still sees the device offline
    late.subscribe(subscription(Kind.STATUS))
    retained = late.next(timeout=30)
    assert Status.from_payload(retained.payload, topic=retained.topic).state == "offline"

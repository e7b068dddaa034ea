"""A real `konak daemon run` process: a successful SIGHUP reload, and the last will."""

from __future__ import annotations

import signal

import pytest

from konak.devtools.probe import MqttProbe, ProbeError, Received
from konak.protocol import Intent, Kind, Status

from .conftest import SLOT_LISTS, DaemonToml, Listen, SpawnDaemon, Speech, command

pytestmark = pytest.mark.integration


def _next_or_none(hub: MqttProbe) -> Received | None:
    try:
        return hub.next(timeout=60)
    except ProbeError:
        return None


def test_a_sighup_reload_applies_new_slot_lists_and_is_reported(
    listen: Listen, daemon_toml: DaemonToml, spawn_daemon: SpawnDaemon, speech: Speech
) -> None:
    hub = listen(Kind.INTENT)
    audio = {"source": "stdin", "sink": "none"}
    config = daemon_toml(audio=audio)
    daemon = spawn_daemon(config, stdin=True)
    proc, notes = daemon.proc, daemon.notes
    notes.wait("READY=1")
    garage = {"name": SLOT_LISTS["name"], "area": [*SLOT_LISTS["area"], "garage"]}
    daemon_toml(audio=audio, intent={"slot_lists": garage})
    proc.send_signal(signal.SIGHUP)
    notes.wait("STATUS=config reloaded; listening")
    assert proc.stdin is not None
    said = speech(*command("turn on the garage light."))
    proc.stdin.write(said.astype("<i2").tobytes())
    proc.stdin.flush()
    received = _next_or_none(hub)
    proc.send_signal(signal.SIGTERM)  # stdin stays open: the poll lets SIGTERM through
    assert proc.wait(timeout=10) == 0
    output = daemon.finish()
    assert received is not None, output
    intent = Intent.from_payload(received.payload, topic=received.topic)
    assert intent.intent == "HassTurnOn"
    # "garage" was in no slot list before the reload: the grammar would have rejected it.
    assert intent.slots == {"area": "garage", "domain": "light"}, intent.text
    assert notes.lines.index("RELOADING=1") < notes.lines.index("STATUS=config reloaded; listening")
    assert f"config reloaded from {config}" in output


def test_a_killed_daemon_is_reported_offline_by_its_last_will(
    listen: Listen, daemon_toml: DaemonToml, spawn_daemon: SpawnDaemon
) -> None:
    hub = listen(Kind.STATUS)
    daemon = spawn_daemon(daemon_toml(audio={"source": "none", "sink": "none"}))
    daemon.notes.wait("READY=1")
    online = hub.next(timeout=60)
    assert Status.from_payload(online.payload, topic=online.topic).state == "online"
    daemon.proc.send_signal(signal.SIGKILL)
    assert daemon.proc.wait(timeout=10) == -signal.SIGKILL
    will = hub.next(timeout=30)
    status = Status.from_payload(will.payload, topic=will.topic)
    assert (status.device, status.state) == ("kitchen-pi", "offline")
    late = listen(Kind.STATUS)  # a subscriber that comes later still sees the device offline
    retained = late.next(timeout=30)
    assert Status.from_payload(retained.payload, topic=retained.topic).state == "offline"

"""Nothing lost, nothing run twice, nothing run after its expiry (issue 13): each scenario is
a real fault on real processes (the harness Mosquitto, ``konak hub run`` with a real stdio
MCP server, devices on the daemon's own HubLink and outbox), and each ends with the
ledger's check and a row of the report.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from konak.devtools.mosquitto import Credentials, Mosquitto
from konak.devtools.probe import MqttProbe
from konak.protocol import Reply, decode_as
from tests.conftest import fill_disk, mounted_tmpfs

from .conftest import Scale
from .rig import (
    TENANT,
    DeviceProcess,
    Devices,
    HubExited,
    HubProcess,
    Ledger,
    add_device_logins,
    record_intent,
    recorder_pids,
    unanswered_turns,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SETTLE_SECONDS = 120.0
SIX_HOURS = 6 * 3600.0

Report = Callable[[dict[str, object]], None]


async def _offer(fleet: Devices, prefix: str, count: int, rate: float, **kw: float) -> list[str]:
    """Send ``count`` intents spread over the fleet at ``rate`` per second."""
    turns = [f"t-{prefix}-{n:05d}" for n in range(count)]
    start = time.monotonic()
    for n, turn in enumerate(turns):
        await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
        fleet.send(n, turn, **kw)
    return turns


def _publish_raw(broker: Mosquitto, ledger: Ledger, turn_id: str, expires_at: float) -> None:
    """An intent straight onto the broker, past any device's own expiry check (an old
    device, a replay): the hub alone must refuse it."""
    add_device_logins(broker, ["raw"])
    creds = Credentials(f"{TENANT}.raw", "pw-raw")
    with MqttProbe(broker.host, broker.port, creds) as probe:
        message = record_intent("raw", turn_id, expires_at)
        probe.subscribe(Reply(tenant=TENANT, device="raw", turn_id=turn_id).topic)
        ledger.sent(turn_id, expires_at)
        probe.publish(message.topic, message.to_payload(), 1, False)
        got = probe.next(SETTLE_SECONDS)
        ledger.received(decode_as(Reply, got.payload, topic=got.topic))


async def test_broker_down(
    broker: Mosquitto,
    hub_process: Callable[..., HubProcess],
    devices: Callable[..., Devices],
    ledger: Ledger,
    tmp_path: Path,
    scale: Scale,
    report: Report,
) -> None:
    """Rows A, B, E, F: the broker is SIGKILLed under load and comes back after
    ``broker_down_seconds``; devices keep queueing meanwhile."""
    hub = hub_process(delay=0.05)
    await hub.start()
    fleet = devices(scale.devices)
    fleet.wait_connected()
    await _offer(fleet, "before", scale.intents, scale.rate)
    ledger.fault_started()
    broker.kill()
    down = asyncio.create_task(asyncio.sleep(scale.broker_down_seconds))
    await _offer(fleet, "during", scale.intents, scale.intents / scale.broker_down_seconds)
    # One the device itself must drop (stamped six hours ago, expired on arrival).
    fleet.send(0, "t-stale-device", expires_in=-SIX_HOURS)
    await down
    broker.start()
    ledger.fault_ended()
    await _offer(fleet, "after", scale.intents, scale.rate)
    _publish_raw(broker, ledger, "t-stale-raw", time.time() - SIX_HOURS)

    await ledger.collect(scale.broker_down_seconds + SETTLE_SECONDS, poll=fleet.poll_dropped)

    figures = ledger.check()
    report(figures)
    assert [r.outcome for _, r in ledger.replies["t-stale-raw"]] == ["expired"]
    assert "t-stale-device" in ledger.dropped
    assert figures["recovery_s"] is not None  # it did recover
    assert await hub.signal(signal.SIGTERM) == 0
    assert unanswered_turns(tmp_path) == 0


async def test_hub_sigkill_under_load(
    hub_process: Callable[..., HubProcess],
    devices: Callable[..., Devices],
    ledger: Ledger,
    tmp_path: Path,
    scale: Scale,
    report: Report,
) -> None:
    """Rows C, D: the hub is SIGKILLed with a backlog in the broker and turns in flight."""
    hub = hub_process(delay=0.2, turns=64)
    await hub.start()
    fleet = devices(scale.devices)
    fleet.wait_connected()
    sending = asyncio.create_task(
        _offer(fleet, "kill", scale.hub_kill_intents, scale.hub_kill_rate)
    )
    await ledger.collect(
        SETTLE_SECONDS,
        lambda: len(ledger.replies) >= scale.hub_kill_intents // 4,
        poll=fleet.poll_dropped,
    )
    ledger.fault_started()
    assert await hub.signal(signal.SIGKILL) == -signal.SIGKILL
    await asyncio.sleep(1.0)
    await hub.start()
    ledger.fault_ended()
    await sending

    await ledger.collect(SETTLE_SECONDS, poll=fleet.poll_dropped)

    figures = ledger.check()
    report(figures)
    # error: killed while it ran; expired: waited out its expiry behind the backlog.
    assert set(figures["outcomes"]) <= {"ok", "error", "expired"}
    assert await hub.signal(signal.SIGTERM) == 0
    assert unanswered_turns(tmp_path) == 0


async def test_hub_sigterm_with_tools_in_flight(
    hub_process: Callable[..., HubProcess],
    devices: Callable[..., Devices],
    ledger: Ledger,
    tmp_path: Path,
    scale: Scale,
    report: Report,
) -> None:
    """Row D: SIGTERM stops intake and lets the turns in flight finish within the grace."""
    hub = hub_process(delay=1.0, turns=8, grace=30.0)
    await hub.start()
    fleet = devices(scale.devices)
    fleet.wait_connected()
    count = 40
    await _offer(fleet, "term", count, 100.0, expires_in=120.0)
    await ledger.collect(SETTLE_SECONDS, lambda: len(ledger.replies) >= 8, poll=fleet.poll_dropped)
    assert await hub.signal(signal.SIGTERM) == 0
    assert unanswered_turns(tmp_path) == 0
    await hub.start()
    ledger.fault_ended()

    await ledger.collect(SETTLE_SECONDS, poll=fleet.poll_dropped)

    figures = ledger.check()
    report(figures)
    assert figures["outcomes"] == {"ok": count}  # none cut short
    assert await hub.signal(signal.SIGTERM) == 0
    assert unanswered_turns(tmp_path) == 0


async def test_hub_sigterm_with_hung_tools(
    hub_process: Callable[..., HubProcess],
    devices: Callable[..., Devices],
    ledger: Ledger,
    tmp_path: Path,
    report: Report,
) -> None:
    """Row D: turns that outlast the grace are failed and answered, never left claimed."""
    hub = hub_process(delay=600.0, turns=4, grace=0.5, tool_timeout=900.0)
    await hub.start()
    fleet = devices(4)
    fleet.wait_connected()
    await _offer(fleet, "hung", 4, 100.0, expires_in=600.0)
    # The four are claimed, their tool calls hang.
    deadline = time.monotonic() + SETTLE_SECONDS
    while unanswered_turns(tmp_path) < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert unanswered_turns(tmp_path) == 4
    assert await hub.signal(signal.SIGTERM) == 0
    assert unanswered_turns(tmp_path) == 0

    await ledger.collect(SETTLE_SECONDS, poll=fleet.poll_dropped)

    figures = ledger.check()
    report(figures)
    assert figures["outcomes"] == {"error": 4}
    assert figures["executed"] == 0
    assert unanswered_turns(tmp_path) == 0


async def test_device_sigkill_with_a_queue(
    broker: Mosquitto,
    hub_process: Callable[..., HubProcess],
    ledger: Ledger,
    tmp_path: Path,
    scale: Scale,
    report: Report,
) -> None:
    """A device SIGKILLed while the broker is away, its outbox full: once both are back,
    each intent still valid runs once; one that expired meanwhile never runs."""
    hub = hub_process(delay=0.05)
    await hub.start()
    broker.kill()
    device = DeviceProcess(broker, tmp_path, ledger, "queued-pi").start()
    for n in range(scale.queued_on_device):
        device.send(f"t-queued-{n:05d}", time.time() + 60.0)
    device.send("t-queued-short", time.time() + 1.0)
    device.kill()
    await asyncio.sleep(1.5)  # the short one expires in the dead device's queue
    broker.start()
    restarted = DeviceProcess(broker, tmp_path, ledger, "queued-pi").start()
    ledger.fault_ended()
    try:
        await ledger.collect(SETTLE_SECONDS, poll=restarted.poll)
    finally:
        restarted.stop()
    restarted.poll()

    figures = ledger.check()
    report(figures)
    assert "t-queued-short" in ledger.dropped
    assert figures["outcomes"] == {"ok": scale.queued_on_device}
    assert await hub.signal(signal.SIGTERM) == 0
    assert unanswered_turns(tmp_path) == 0


@pytest.mark.parametrize("fault", ["hang", "crash"])
async def test_mcp_server(
    fault: str,
    hub_process: Callable[..., HubProcess],
    devices: Callable[..., Devices],
    ledger: Ledger,
    tmp_path: Path,
    scale: Scale,
    report: Report,
) -> None:
    """Row G: the tenant's MCP server hangs (SIGSTOP) or crashes (SIGKILL) under load;
    the hub answers the calls it had in flight, starts a new one, and serves again."""
    hub = hub_process(delay=0.1, tool_timeout=scale.fault_seconds)
    await hub.start()
    fleet = devices(scale.devices)
    fleet.wait_connected()
    await _offer(fleet, f"{fault}-before", scale.intents, scale.rate)
    first = recorder_pids(tmp_path)[-1]
    os.kill(first, signal.SIGSTOP if fault == "hang" else signal.SIGKILL)
    # Intents keep coming while the server is hung or dead, until the hub has a new one.
    during = asyncio.create_task(_offer(fleet, f"{fault}-during", 100_000, scale.rate))
    deadline = time.monotonic() + SETTLE_SECONDS
    while recorder_pids(tmp_path)[-1] == first and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    during.cancel()
    ledger.fault_ended()
    await _offer(fleet, f"{fault}-after", scale.intents, scale.rate)

    await ledger.collect(SETTLE_SECONDS, poll=fleet.poll_dropped)

    figures = ledger.check()
    report(figures)
    assert len(recorder_pids(tmp_path)) >= 2  # replaced
    assert figures["recovery_s"] is not None
    assert await hub.signal(signal.SIGTERM) == 0
    assert unanswered_turns(tmp_path) == 0


@pytest.mark.expect_error_log(match="database or disk is full")
async def test_device_disk_full(
    hub_process: Callable[..., HubProcess],
    devices: Callable[..., Devices],
    ledger: Ledger,
    tmp_path: Path,
    scale: Scale,
    report: Report,
) -> None:
    """The disk under a device's outbox fills up: what it cannot queue is refused at once
    (the person hears "I couldn't keep that"), nothing queued is lost, and the device
    carries on once space is back."""
    hub = hub_process(delay=0.05)
    await hub.start()
    count = max(4, scale.intents // 8)
    with mounted_tmpfs(tmp_path / "disk", "4m") as disk:
        fleet = devices(1, prefix="disk", queue_dir=disk)
        fleet.wait_connected()
        await _offer(fleet, "before", count, scale.rate)
        filler = fill_disk(disk)
        await _offer(fleet, "full", count, scale.rate)
        filler.unlink()
        ledger.fault_ended()
        await _offer(fleet, "after", count, scale.rate)

        await ledger.collect(SETTLE_SECONDS, poll=fleet.poll_dropped)
        fleet.stop()  # its files closed before the filesystem goes

    figures = ledger.check()
    report(figures)
    assert ledger.refused, "the full disk refused nothing: the fault did not happen"
    assert ledger.refused <= {t for t in ledger.expires if t.startswith("t-full-")}
    assert figures["recovery_s"] is not None
    assert await hub.signal(signal.SIGTERM) == 0
    assert unanswered_turns(tmp_path) == 0


async def test_hub_database_corrupt_at_start(
    hub_process: Callable[..., HubProcess],
    devices: Callable[..., Devices],
    ledger: Ledger,
    tmp_path: Path,
    scale: Scale,
    report: Report,
) -> None:
    """The hub's database is found corrupt at a restart: the hub refuses to start with one
    line naming the file; the operator moves it aside and starts again; what devices sent
    meanwhile is answered or refused as expired, nothing is lost or run twice."""
    hub = hub_process(delay=0.05)
    await hub.start()
    fleet = devices(scale.devices)
    fleet.wait_connected()
    await _offer(fleet, "before", scale.intents // 4, scale.rate)
    await ledger.collect(SETTLE_SECONDS, poll=fleet.poll_dropped)
    assert await hub.signal(signal.SIGTERM) == 0
    database = tmp_path / "hub.sqlite3"
    with database.open("r+b") as f:  # a damaged header: not a database any more
        f.write(b"this is not a SQLite file" * 4)
    for sidecar in ("-wal", "-shm"):
        database.with_name(database.name + sidecar).unlink(missing_ok=True)

    ledger.fault_started()
    sending = asyncio.create_task(_offer(fleet, "down", scale.intents // 4, scale.rate))
    with pytest.raises(HubExited) as refused:
        await hub.start()
    database.rename(database.with_suffix(".corrupt"))  # what the one line tells to do
    await hub.start()
    ledger.fault_ended()
    await sending
    await _offer(fleet, "after", scale.intents // 4, scale.rate)
    await ledger.collect(SETTLE_SECONDS, poll=fleet.poll_dropped)

    figures = ledger.check()
    report(figures)
    assert refused.value.status == 1
    lines = refused.value.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert str(database) in lines[0]
    assert "Traceback" not in refused.value.stderr
    assert figures["recovery_s"] is not None
    assert await hub.signal(signal.SIGTERM) == 0
    assert unanswered_turns(tmp_path) == 0


async def test_overload(
    hub_process: Callable[..., HubProcess],
    devices: Callable[..., Devices],
    ledger: Ledger,
    tmp_path: Path,
    scale: Scale,
    report: Report,
) -> None:
    """More offered than the hub can serve: it answers more slowly, but loses nothing and
    runs nothing after its expiry (what is too late is refused as expired)."""
    if not scale.overload_rate:
        pytest.skip("overload runs at the full scale only (make reliability)")
    hub = hub_process(delay=0.0, turns=512)
    await hub.start()
    fleet = devices(50, prefix="load")
    fleet.wait_connected()
    count = int(scale.overload_rate * scale.overload_seconds)
    await _offer(fleet, "load", count, scale.overload_rate)

    await ledger.collect(SETTLE_SECONDS * 3, poll=fleet.poll_dropped)

    figures = ledger.check()
    report(figures)
    assert await hub.signal(signal.SIGTERM) == 0
    assert unanswered_turns(tmp_path) == 0

"""A real ``konak hub run`` killed or stopped under load, on the real broker: no intent is
lost (each one is answered), none runs twice, none runs after its expiry.

The tool is a real stdio MCP server (``recorder_mcp.py``) that writes one line per
execution, so the tests count executions, not only replies.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from konak.devtools.mosquitto import Mosquitto, free_port
from konak.devtools.probe import ProbeError
from konak.protocol import Reply, decode_as

from .conftest import Device, intent

pytestmark = pytest.mark.integration

RECORDER = Path(__file__).with_name("recorder_mcp.py")
WAIT_SECONDS = 60.0
DEVICES = 4


def _config(tmp_path: Path, broker: Mosquitto, *, delay: float, turns: int, grace: float) -> Path:
    config = tmp_path / "hub.toml"
    config.write_text(
        f"""
[hub]
database_path = "{tmp_path}/hub.sqlite3"
http_port = {free_port()}
log_file = "{tmp_path}/hub.jsonl"
stop_grace_seconds = {grace}

[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "{broker.admin.username}"
password_env = "TEST_HUB_MQTT_PASSWORD"
reconnect_seconds = 0.2
device_message_burst = 10000
device_messages_per_second = 10000.0
max_turns_in_flight = {turns}

[fleet_mcp]
enabled = false

[tenants.acme]

[[tenants.acme.mcp_servers]]
name = "recorder"
command = "{sys.executable}"
args = ["{RECORDER}", "{tmp_path}/executed.txt", "{delay}"]
timeout_seconds = 60.0
"""
    )
    return config


@dataclass
class HubProcess:
    """``konak hub run`` as a child process, ready once it told systemd READY=1."""

    config: Path
    tmp_path: Path
    broker: Mosquitto
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0

    async def start(self) -> None:
        """Start the hub and wait for READY=1."""
        self.starts += 1
        path = self.tmp_path / f"notify-{self.starts}.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(path))
            notify.setblocking(False)
            env = {
                **os.environ,
                "NOTIFY_SOCKET": str(path),
                "TEST_HUB_MQTT_PASSWORD": self.broker.admin.password,
            }
            with (self.tmp_path / f"hub-{self.starts}.err").open("wb") as err:
                self.proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "konak.cli", "hub", "run", "--config",
                    str(self.config), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=err,
                )  # fmt: skip
            loop = asyncio.get_running_loop()
            ready = await asyncio.wait_for(loop.sock_recv(notify, 4096), WAIT_SECONDS)
        assert ready.decode().startswith("READY=1")

    async def signal(self, sig: signal.Signals) -> int:
        """Send ``sig`` and wait for the exit status."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), WAIT_SECONDS)

    def kill(self) -> None:
        """SIGKILL, if still running (cleanup)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


@pytest.fixture
def hub_process(broker: Mosquitto, tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    """Make the hub process of a test; it is killed after the test if still running."""
    made: list[HubProcess] = []

    def make(*, delay: float, turns: int, grace: float = 20.0) -> HubProcess:
        config = _config(tmp_path, broker, delay=delay, turns=turns, grace=grace)
        hub = HubProcess(config, tmp_path, broker)
        made.append(hub)
        return hub

    yield make
    for hub in made:
        hub.kill()


@dataclass
class Tally:
    """Every reply the devices received, by turn."""

    devices: list[Device]
    replies: dict[str, list[Reply]] = field(default_factory=lambda: defaultdict(list))

    def _drain(self, timeout: float) -> None:
        for device in self.devices:
            try:
                got = device.probe.next(timeout)
            except ProbeError:
                continue
            reply = decode_as(Reply, got.payload, topic=got.topic)
            self.replies[reply.turn_id].append(reply)

    async def until(self, done: Callable[[], bool]) -> None:
        """Collect replies until ``done()`` holds or WAIT_SECONDS passed (then the test's
        assertions say what is missing)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while not done() and time.monotonic() < deadline:
            await asyncio.to_thread(self._drain, 0.1)

    def answered(self, turns: list[str]) -> list[str]:
        """The turns that got a first answer (a reply that is not a ``repeat``)."""
        return [t for t in turns if self.answers(t)]

    def answers(self, turn: str) -> list[Reply]:
        """The replies of a turn that are not repeats (more than one: it ran twice)."""
        return [r for r in self.replies[turn] if not r.repeat]


def _executed(tmp_path: Path) -> Counter[str]:
    path = tmp_path / "executed.txt"
    return Counter(path.read_text().split()) if path.exists() else Counter()


def _turns_in_state(tmp_path: Path, *states: str) -> int:
    marks = ", ".join("?" * len(states))
    with closing(sqlite3.connect(tmp_path / "hub.sqlite3")) as db:
        query = f"SELECT count(*) FROM turns WHERE state IN ({marks})"
        return int(db.execute(query, states).fetchone()[0])


def _unanswered(tmp_path: Path) -> int:
    """Turns claimed or finished whose reply the broker has not acknowledged."""
    return _turns_in_state(tmp_path, "claimed", "answering")


def _fleet(devices: Callable[..., Device]) -> list[Device]:
    return [devices(f"pi-{n}") for n in range(DEVICES)]


async def _send(fleet: list[Device], turns: list[str], **kw: object) -> None:
    for n, turn in enumerate(turns):
        device = fleet[n % len(fleet)]
        await device.send(intent(device.device, turn, "Record", slots={"turn": turn}, **kw))


def _report(name: str, tally: Tally, turns: list[str], executed: Counter[str]) -> None:
    answered = tally.answered(turns)
    print(
        f"\n{name}: sent {len(turns)} answered {len(answered)} "
        f"executed {sum(1 for t in turns if executed[t])} lost {len(turns) - len(answered)} "
        f"duplicated {sum(n - 1 for n in executed.values() if n > 1)} "
        f"outcomes {dict(Counter(tally.answers(t)[0].outcome for t in answered))}"
    )


async def test_a_hub_sigkilled_under_load_loses_no_intent_and_runs_none_twice_or_late(
    hub_process: Callable[..., HubProcess], devices: Callable[..., Device], tmp_path: Path
) -> None:
    hub = hub_process(delay=0.2, turns=8)
    await hub.start()
    turns = [f"t-kill-{n:05d}" for n in range(200)]
    fleet = _fleet(devices)
    tally = Tally(fleet)
    await _send(fleet, turns)  # each acknowledged by the broker: the devices forget it
    await tally.until(lambda: len(tally.answered(turns)) >= 20)
    assert await hub.signal(signal.SIGKILL) == -signal.SIGKILL
    # While the hub is dead: one intent already past its expiry, one well within it.
    stale, fresh = "t-stale-00001", "t-fresh-00001"
    await _send(fleet[:1], [stale], expires_at=time.time() - 1)
    await _send(fleet[:1], [fresh], expires_at=time.time() + 600)
    await hub.start()
    everything = [*turns, stale, fresh]
    await tally.until(lambda: len(tally.answered(everything)) == len(everything))
    assert await hub.signal(signal.SIGTERM) == 0

    executed = _executed(tmp_path)
    _report("hub SIGKILL under load", tally, everything, executed)
    assert [t for t in everything if not tally.answers(t)] == []  # 0 lost
    # A turn answered twice (the hub died after its reply left, before it noted that) got
    # the same answer twice, which the device drops as a reply to a turn it has finished.
    assert [t for t in everything if len({r.outcome for r in tally.answers(t)}) != 1] == []
    assert [t for t, n in executed.items() if n > 1] == []  # 0 executed twice
    assert set(executed) <= set(everything)
    assert [r.outcome for r in tally.answers(stale)] == ["expired"]
    assert executed[stale] == 0  # refused without running
    assert [r.outcome for r in tally.answers(fresh)] == ["ok"]
    assert executed[fresh] == 1
    # A turn answered "ok" ran exactly once; the others were interrupted by the kill.
    ok = [t for t in turns if tally.answers(t)[0].outcome == "ok"]
    assert all(executed[t] == 1 for t in ok)
    assert {tally.answers(t)[0].outcome for t in turns} <= {"ok", "error"}
    assert _unanswered(tmp_path) == 0


async def test_sigterm_stops_intake_and_lets_turns_in_flight_finish(
    hub_process: Callable[..., HubProcess], devices: Callable[..., Device], tmp_path: Path
) -> None:
    hub = hub_process(delay=1.0, turns=8, grace=30.0)
    await hub.start()
    turns = [f"t-term-{n:05d}" for n in range(40)]
    fleet = _fleet(devices)
    tally = Tally(fleet)
    await _send(fleet, turns)
    await tally.until(lambda: len(tally.answered(turns)) >= 8)
    assert await hub.signal(signal.SIGTERM) == 0
    left_unanswered = _unanswered(tmp_path)
    await hub.start()
    await tally.until(lambda: len(tally.answered(turns)) == len(turns))
    assert await hub.signal(signal.SIGTERM) == 0

    executed = _executed(tmp_path)
    _report("hub SIGTERM with tools in flight", tally, turns, executed)
    assert left_unanswered == 0  # every turn in flight finished within the grace
    assert [t for t in turns if [r.outcome for r in tally.answers(t)] != ["ok"]] == []
    assert executed == Counter({t: 1 for t in turns})


async def test_sigterm_fails_and_answers_the_turns_that_outlast_the_grace(
    hub_process: Callable[..., HubProcess], devices: Callable[..., Device], tmp_path: Path
) -> None:
    hub = hub_process(delay=600.0, turns=4, grace=0.5)
    await hub.start()
    turns = [f"t-hang-{n:05d}" for n in range(4)]
    fleet = _fleet(devices)
    tally = Tally(fleet)
    await _send(fleet, turns)
    # Stop the hub once it has claimed all four (their tool calls hang).
    await tally.until(lambda: _turns_in_state(tmp_path, "claimed") == len(turns))
    assert await hub.signal(signal.SIGTERM) == 0
    await tally.until(lambda: len(tally.answered(turns)) == len(turns))

    executed = _executed(tmp_path)
    _report("hub SIGTERM with hung tools", tally, turns, executed)
    assert {t: [r.outcome for r in tally.answers(t)] for t in turns} == {
        t: ["error"] for t in turns
    }
    assert "restarted" in tally.answers(turns[0])[0].text
    assert _unanswered(tmp_path) == 0
    assert executed == Counter()

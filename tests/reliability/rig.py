"""The reliability rig: real processes, real faults, and a ledger of what became of each intent.

- the harness Mosquitto with persistence (autosave on changes), which scenarios kill and
  start again on the same port;
- ``konak hub run`` as a child process (:class:`HubProcess`), ready at its ``READY=1``;
- devices built on the daemon's own HubLink and Outbox: in this process (:class:`Devices`)
  or as a child process a scenario can SIGKILL (:class:`DeviceProcess`);
- the recorder MCP server (``recorder_mcp.py``), which notes each execution and its time;
- a :class:`Ledger`: each intent sent and its expiry, each reply seen on the broker, each
  execution, each intent a device dropped (expired or withdrawn). Its figures are a row of
  the report, and :meth:`Ledger.check` fails the scenario on any loss, duplicate or
  execution after expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from konak.daemon.errors import QueueError
from konak.daemon.hublink import HubLink
from konak.daemon.outbox import Outbox
from konak.daemon.settings import DeviceSettings, HubLinkSettings
from konak.devtools.mosquitto import AclRule, Mosquitto, free_port
from konak.protocol import Intent, Message, Reply, Status, decode_as, device_acl

HERE: Final = Path(__file__).resolve().parent
RECORDER: Final = HERE / "recorder_mcp.py"
DEVICE_PROC: Final = HERE / "device_proc.py"
TENANT: Final = "acme"
READY_SECONDS: Final = 60.0
QUIET_SECONDS: Final = 3.0  # no reply for this long: the replies have stopped
# What the daemon stamps by default: the intent expiry (30 s) capped at the reply timeout.
DEVICE_EXPIRY_SECONDS: Final = 8.0


def hub_config(
    tmp_path: Path,
    broker: Mosquitto,
    *,
    delay: float = 0.0,
    turns: int = 64,
    grace: float = 20.0,
    tool_timeout: float = 60.0,
) -> Path:
    """hub.toml: tenant acme, whose only MCP server is the recorder (tool ``Record``)."""
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

[tenants.{TENANT}]

[[tenants.{TENANT}.mcp_servers]]
name = "recorder"
command = "{sys.executable}"
args = ["{RECORDER}", "{tmp_path}/executed.txt", "{delay}"]
timeout_seconds = {tool_timeout}
env = {{ KONAK_TEST_PIDS = "{tmp_path}/recorder.pids" }}
"""
    )
    return config


class HubExited(Exception):
    """The hub ended before it was ready: its exit status and what it wrote to stderr."""

    def __init__(self, status: int, stderr: str) -> None:
        super().__init__(f"hub exited with status {status}: {stderr.strip()}")
        self.status, self.stderr = status, stderr


@dataclass
class HubProcess:
    """``konak hub run`` as a child process, ready once it told systemd READY=1."""

    config: Path
    tmp_path: Path
    broker: Mosquitto
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0

    async def start(self) -> None:
        """Start the hub and wait for READY=1; :class:`HubExited` if it ends first."""
        self.starts += 1
        path = self.tmp_path / f"notify-{self.starts}.sock"
        errors = self.tmp_path / f"hub-{self.starts}.err"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(path))
            notify.setblocking(False)
            env = {
                **os.environ,
                "NOTIFY_SOCKET": str(path),
                "TEST_HUB_MQTT_PASSWORD": self.broker.admin.password,
            }
            with errors.open("wb") as err:
                self.proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "konak.cli", "hub", "run", "--config",
                    str(self.config), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=err,
                )  # fmt: skip
            loop = asyncio.get_running_loop()
            ready = asyncio.ensure_future(loop.sock_recv(notify, 4096))
            exited = asyncio.ensure_future(self.proc.wait())
            done, _ = await asyncio.wait(
                {ready, exited}, timeout=READY_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            ready.cancel()
            exited.cancel()
        if ready in done:
            assert ready.result().decode().startswith("READY=1")
            return
        if exited in done:
            raise HubExited(exited.result(), errors.read_text())
        raise TimeoutError(f"the hub was not ready within {READY_SECONDS:.0f}s")

    async def signal(self, sig: signal.Signals) -> int:
        """Send ``sig`` and wait for the exit status."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), READY_SECONDS)

    async def kill(self) -> None:
        """SIGKILL, if still running (cleanup)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def unanswered_turns(tmp_path: Path) -> int:
    """Turns the hub claimed or finished whose reply the broker never acknowledged."""
    with contextlib.closing(sqlite3.connect(tmp_path / "hub.sqlite3")) as db:
        query = "SELECT count(*) FROM turns WHERE state IN ('claimed', 'answering')"
        return int(db.execute(query).fetchone()[0])


def recorder_pids(tmp_path: Path) -> list[int]:
    """The pids of the recorder servers the hub started, oldest first."""
    path = tmp_path / "recorder.pids"
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _device_settings(broker: Mosquitto, name: str, queue: Path) -> HubLinkSettings:
    return HubLinkSettings(
        host=broker.host,
        port=broker.port,
        username=f"{TENANT}.{name}",
        password=f"pw-{name}",
        reconnect_seconds=0.25,
        queue_path=queue,
    )


def add_device_logins(broker: Mosquitto, names: Iterable[str]) -> None:
    """A broker login per device, limited to its own topics (as enrolment makes them)."""
    broker.add_users(
        (f"{TENANT}.{n}", f"pw-{n}", [AclRule(a, t) for a, t in device_acl(TENANT, n)])
        for n in names
    )


def record_intent(device: str, turn_id: str, expires_at: float | None) -> Intent:
    """The intent a device sends for one turn: the recorder's ``Record`` tool."""
    return Intent(
        tenant=TENANT,
        device=device,
        turn_id=turn_id,
        text=f"record {turn_id}",
        intent="Record",
        slots={"turn": turn_id},
        expires_at=expires_at,
    )


class Ledger:
    """What became of each intent: sent, answered, executed (when), dropped by a device."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        self.name = name
        self.tmp_path = tmp_path
        self.expires: dict[str, float] = {}  # turn -> expires_at (inf: never)
        # What the devices received, as their HubLink hands it on: a reply lost on the
        # way (a broker that lost a session) is not counted, as the person does not hear it.
        self.replies: dict[str, list[tuple[float, Reply]]] = defaultdict(list)
        self.dropped: set[str] = set()  # turns a device gave up (expired or withdrawn)
        self.refused: set[str] = set()  # turns a device could not queue (told at once)
        self.sent_at: dict[str, float] = {}
        self.fault_started_at: float | None = None
        self.fault_ended_at: float | None = None

    def sent(self, turn_id: str, expires_at: float | None) -> None:
        """An intent was handed to a device's outbox (or published)."""
        self.expires[turn_id] = math.inf if expires_at is None else expires_at
        self.sent_at[turn_id] = time.time()

    def fault_started(self) -> None:
        """The fault begins now: a turn sent before it may run and its reply be cut off."""
        self.fault_started_at = time.time()

    def received(self, reply: Reply, at: float | None = None) -> None:
        """A device received a reply (called from its network thread)."""
        self.replies[reply.turn_id].append((time.time() if at is None else at, reply))

    def fault_ended(self) -> None:
        """The fault is over (the broker or hub is back): recovery is timed from here."""
        self.fault_ended_at = time.time()

    def settled(self) -> bool:
        """Every intent sent is answered or was dropped by its device."""
        return all(t in self.replies or t in self.dropped for t in self.expires)

    async def collect(
        self, timeout: float, until: Callable[[], bool] | None = None, *, poll: Callable[[], Any]
    ) -> None:
        """Wait until ``until()`` (default: :meth:`settled`) or ``timeout``;
        ``poll`` is called before each check (it reads what the devices received and
        dropped)."""
        done = until or self.settled
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            poll()
            if done():
                break
            await asyncio.sleep(0.2)
        if until is not None:
            return
        # A turn its device dropped at its expiry may have started just before it: its
        # reply is still on the way. Listen until the replies stop.
        count, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < QUIET_SECONDS and time.monotonic() < deadline:
            poll()
            seen = sum(len(r) for r in self.replies.values())
            if seen != count:
                count, quiet_since = seen, time.monotonic()
            await asyncio.sleep(0.2)

    def executions(self) -> dict[str, list[float]]:
        """When each turn was executed, from the recorder's file."""
        path = self.tmp_path / "executed.txt"
        runs: dict[str, list[float]] = defaultdict(list)
        if path.exists():
            for line in path.read_text().splitlines():
                turn, at = line.split()
                runs[turn].append(float(at))
        return runs

    def first(self, turn_id: str) -> Reply | None:
        """The first reply seen for a turn."""
        got = self.replies.get(turn_id)
        return got[0][1] if got else None

    def figures(self) -> dict[str, Any]:
        """The scenario's row: sent, answered, executed, dropped by a device, lost,
        duplicated, late (executed after its expiry), recovery seconds."""
        runs = self.executions()
        turns = list(self.expires)
        answered = [t for t in turns if t in self.replies]
        dropped = [t for t in turns if t not in self.replies and t in self.dropped]
        late = sum(1 for t in turns for at in runs.get(t, []) if at > self.expires[t])
        recovery: float | None = None
        if self.fault_ended_at is not None:
            after = [
                at
                for got in self.replies.values()
                for at, r in got
                if at >= self.fault_ended_at and r.outcome == "ok" and not r.repeat
            ]
            recovery = round(min(after) - self.fault_ended_at, 2) if after else None
        return {
            "scenario": self.name,
            "sent": len(turns),
            "answered": len(answered),
            "executed": sum(1 for t in turns if runs.get(t)),
            "dropped": len(dropped),
            "lost": len(turns) - len(answered) - len(dropped),
            "duplicated": sum(len(runs.get(t, [])) - 1 for t in turns if len(runs.get(t, [])) > 1),
            "late": late,
            "recovery_s": recovery,
            "unconfirmed": len(self._unconfirmed(runs)),
            "outcomes": dict(
                Counter(r.outcome for t in answered if (r := self.first(t)))
                + Counter(refused=len(self.refused))
            ),
            "unknown_executions": sorted(set(runs) - set(turns)),
        }

    def _unconfirmed(self, runs: dict[str, list[float]]) -> list[str]:
        """Turns that ran though their device gave up on them: the reply was cut off."""
        return [t for t in self.expires if t in runs and t in self.dropped and not self.first(t)]

    def check(self) -> dict[str, Any]:
        """Fail on any loss, duplicate, execution after expiry, or a reply that says
        something other than what happened; return the figures."""
        figures = self.figures()
        runs = self.executions()
        assert figures["lost"] == 0, f"{self.name}: lost {self._missing()}"
        assert figures["duplicated"] == 0, f"{self.name}: run twice {figures}"
        assert figures["late"] == 0, f"{self.name}: executed after expiry {figures}"
        assert figures["unknown_executions"] == [], figures
        for turn in self.expires:
            reply = self.first(turn)
            if turn in self.dropped and reply is None:
                # The one contradiction no protocol avoids: the tool ran, then the fault
                # cut the reply off, and the device gave up. Only a turn sent before the
                # fault began may end so; the person heard "the hub is not answering".
                if turn in runs:
                    began = self.fault_started_at
                    assert began is not None, f"{turn}: dropped by its device, yet executed"
                    assert self.sent_at[turn] < began, f"{turn}: dropped, yet executed"
                continue
            assert reply is not None
            # Every reply to a turn says the same thing (a repeat repeats it).
            assert {(r.outcome, r.text) for _, r in self.replies[turn]} == {
                (reply.outcome, reply.text)
            }, self.replies[turn]
            if reply.outcome == "ok":
                assert len(runs.get(turn, [])) == 1, f"{turn}: answered ok, run {runs.get(turn)}"
            elif reply.outcome in ("expired", "no_route", "limit"):
                assert turn not in runs, f"{turn}: answered {reply.outcome}, yet executed"
            else:  # error: the hub restarted or the tool failed while it ran
                assert reply.outcome == "error", reply
        return figures

    def _missing(self) -> list[str]:
        return [t for t in self.expires if t not in self.replies and t not in self.dropped][:10]


@dataclass
class Devices:
    """``count`` devices in this process, each with its own login, outbox and HubLink."""

    broker: Mosquitto
    tmp_path: Path
    ledger: Ledger
    count: int
    prefix: str = "pi"
    queue_dir: Path | None = None  # where the outboxes live (default: tmp_path)
    links: dict[str, HubLink] = field(default_factory=dict)
    outboxes: dict[str, Outbox] = field(default_factory=dict)

    def start(self) -> Devices:
        """Create the logins and start every device's link (the broker may be away)."""
        names = [f"{self.prefix}-{n}" for n in range(self.count)]
        add_device_logins(self.broker, names)
        for name in names:
            queue = (self.queue_dir or self.tmp_path) / f"queue-{name}.sqlite3"
            outbox = Outbox(queue)
            settings = _device_settings(self.broker, name, queue)
            link = HubLink(
                DeviceSettings(TENANT, name),
                settings,
                outbox,
                self._on_message,
                _online(name),
            )
            link.start()
            self.links[name], self.outboxes[name] = link, outbox
        return self

    def _on_message(self, message: Message) -> None:
        if isinstance(message, Reply):
            self.ledger.received(message)

    def wait_connected(self, timeout: float = READY_SECONDS) -> None:
        """Until every device is connected."""
        for link in self.links.values():
            assert link.connected.wait(timeout)

    def send(
        self, index: int, turn_id: str, expires_in: float | None = DEVICE_EXPIRY_SECONDS
    ) -> None:
        """Device ``index`` (round robin) queues one intent, as its pipeline does; one its
        outbox cannot take is refused at once (the person hears so): a drop."""
        name = list(self.links)[index % len(self.links)]
        expires_at = None if expires_in is None else time.time() + expires_in
        self.ledger.sent(turn_id, expires_at)
        try:
            self.links[name].queue(record_intent(name, turn_id, expires_at))
        except QueueError:
            self.ledger.refused.add(turn_id)
            self.ledger.dropped.add(turn_id)

    def poll_dropped(self) -> None:
        """Note the intents the devices gave up (their dead letters)."""
        for outbox in self.outboxes.values():
            self.ledger.dropped.update(d.turn_id for d in outbox.dead_letters())

    def queued(self) -> int:
        """Intents still in the outboxes (sent and unanswered, or waiting)."""
        return sum(len(o) for o in self.outboxes.values())

    def stop(self) -> None:
        """Stop every link and close the outboxes."""
        for link in self.links.values():
            link.stop()
        for outbox in self.outboxes.values():
            outbox.close()


def _online(name: str) -> Callable[[], Status]:
    return lambda: Status(tenant=TENANT, device=name, state="online")


class DeviceProcess:
    """One device (HubLink and outbox) in a child process, to be SIGKILLed with a queue."""

    def __init__(self, broker: Mosquitto, tmp_path: Path, ledger: Ledger, name: str) -> None:
        self.broker, self.ledger, self.name = broker, ledger, name
        self.queue = tmp_path / f"queue-{name}.sqlite3"
        self.replies = tmp_path / f"replies-{name}.jsonl"
        self._read = 0  # bytes of the replies file already in the ledger
        self.proc: subprocess.Popen[str] | None = None
        add_device_logins(broker, [name])

    def start(self) -> DeviceProcess:
        """Start the process (it connects in the background)."""
        config = {
            "host": self.broker.host,
            "port": self.broker.port,
            "tenant": TENANT,
            "device": self.name,
            "username": f"{TENANT}.{self.name}",
            "password": f"pw-{self.name}",
            "queue": str(self.queue),
            "replies": str(self.replies),
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(DEVICE_PROC), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def send(self, turn_id: str, expires_at: float | None) -> None:
        """Queue one intent and wait until it is in the outbox on disk."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.ledger.sent(turn_id, expires_at)
        self.proc.stdin.write(f"{turn_id} {'none' if expires_at is None else expires_at}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().split() == ["queued", turn_id]

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, nothing is said to the broker."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_pipes()

    def stop(self) -> None:
        """End the process the way systemd would (SIGTERM)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.proc is not None:
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    def poll(self) -> None:
        """Note the replies this device received and the intents it gave up."""
        if self.replies.exists():
            data = self.replies.read_bytes()
            end = data.rfind(b"\n") + 1
            for line in data[self._read : end].splitlines():
                at, payload = line.split(b" ", 1)
                self.ledger.received(decode_as(Reply, payload), float(at))
            self._read = max(self._read, end)
        if not self.queue.exists():
            return
        outbox = Outbox(self.queue)
        try:
            self.ledger.dropped.update(d.turn_id for d in outbox.dead_letters())
        finally:
            outbox.close()

"""Hub scale: N simulated devices send intents over the real broker to a real hub process,
which fulfils each with konak-home (an MCP server over stdio) and replies.

Measures sustained intents per second, intent -> reply latency, and what became of each
intent: answered in time, refused as expired by the hub, answered late (after its expiry,
when a device would no longer speak it), lost (never answered), duplicated. Every device
has its own broker login limited to its own topics; every intent carries an expiry, as a
device stamps it. After the last send the bench keeps listening until every intent is
answered or no reply has come for ``STALL_SECONDS``: a slow hub shows as late, not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiomqtt

from konak.bench.stats import percentiles_ms
from konak.daemon.settings import DEFAULT_INTENT_EXPIRY_SECONDS
from konak.devtools.localhub import READY_TIMEOUT_SECONDS, local_hub
from konak.devtools.mosquitto import AclRule, Mosquitto
from konak.protocol import Intent, Kind, Reply, decode_as, device_acl, subscription

logger = logging.getLogger(__name__)

TENANT: Final = "bench"
LIGHTS: Final = tuple(f"light {i}" for i in range(8))
CONNECT_CONCURRENCY: Final = 64
# Stop waiting for replies once none has come for this long (longer than an intent's
# expiry, so a hub still working through a backlog is not cut short).
STALL_SECONDS: Final = DEFAULT_INTENT_EXPIRY_SECONDS + 15.0


class Tally:
    """What became of each intent sent: replies counted by turn, judged against expiry."""

    def __init__(self, expiry_seconds: float = DEFAULT_INTENT_EXPIRY_SECONDS) -> None:
        self.expiry_seconds = expiry_seconds
        self.sent_at: dict[str, float] = {}
        self.first: dict[str, tuple[float, str]] = {}  # turn -> (received at, outcome)
        self.replies: Counter[str] = Counter()
        self.repeated = 0
        self.outcomes: Counter[str] = Counter()
        self.last_reply_at = 0.0

    def sent(self, turn_id: str, at: float) -> None:
        """An intent left (``at`` on the bench's monotonic clock)."""
        self.sent_at[turn_id] = at

    def received(self, turn_id: str, outcome: str, at: float, *, repeat: bool = False) -> None:
        """A reply arrived; a ``repeat`` (the hub answering an intent sent again) is counted
        apart, and a second reply that is not one means the turn ran twice."""
        if repeat:
            self.repeated += 1
            return
        self.replies[turn_id] += 1
        self.outcomes[outcome] += 1
        self.last_reply_at = max(self.last_reply_at, at)
        if turn_id not in self.first:
            self.first[turn_id] = (at, outcome)

    @property
    def unanswered(self) -> int:
        """Intents sent that have no reply yet."""
        return sum(1 for turn in self.sent_at if turn not in self.first)

    def clear(self) -> None:
        """Forget everything (after the warm-up)."""
        self.sent_at.clear()
        self.first.clear()
        self.replies.clear()
        self.repeated = 0
        self.outcomes.clear()
        self.last_reply_at = 0.0

    def figures(self) -> dict[str, Any]:
        """in_time + expired + late + lost == sent; latencies of the first replies."""
        in_time = expired = late = 0
        latencies: list[float] = []
        for turn, sent in self.sent_at.items():
            if turn not in self.first:
                continue
            at, outcome = self.first[turn]
            latencies.append(at - sent)
            if outcome == "expired":
                expired += 1
            elif at - sent > self.expiry_seconds:
                late += 1
            else:
                in_time += 1
        answered = in_time + expired + late
        return {
            "intents_sent": len(self.sent_at),
            "replies_received": answered,
            "answered_in_time": in_time,
            "expired": expired,
            "late": late,
            "lost": len(self.sent_at) - answered,
            "duplicated": sum(n - 1 for n in self.replies.values() if n > 1),
            "repeated": self.repeated,
            "intent_to_reply": percentiles_ms(latencies),
        }


@dataclass(frozen=True, slots=True)
class HubScaleSettings:
    """How many devices, how fast and for how long."""

    devices: int = 2000
    rate_per_second: float = 100.0
    duration_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.devices < 1 or self.rate_per_second <= 0 or self.duration_seconds <= 0:
            raise ValueError("devices, rate and duration must be positive")


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, needed))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Fleet:
    """The simulated devices and what they received."""

    def __init__(self, broker: Mosquitto, count: int) -> None:
        self.broker = broker
        self.names = [f"d{i:05d}" for i in range(count)]
        self.clients: dict[str, aiomqtt.Client] = {}
        self.tally = Tally()
        self.bad_replies = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stack = contextlib.AsyncExitStack()

    async def connect(self) -> None:
        """Connect every device with its own login and subscribe to its replies."""
        self.broker.add_users(
            (f"{TENANT}.{name}", f"pw-{name}", [AclRule(a, t) for a, t in device_acl(TENANT, name)])
            for name in self.names
        )
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(name: str) -> None:
            async with gate:
                client = aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    username=f"{TENANT}.{name}",
                    password=f"pw-{name}",
                    identifier=f"bench-{name}",
                    protocol=aiomqtt.ProtocolVersion.V5,
                )
                await self._stack.enter_async_context(client)
                await client.subscribe(subscription(Kind.REPLY, tenant=TENANT, device=name), 1)
                self.clients[name] = client
                self._tasks.append(asyncio.create_task(self._receive(client)))

        await asyncio.gather(*(one(n) for n in self.names))

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            now = time.perf_counter()
            try:
                reply = decode_as(Reply, bytes(message.payload), topic=str(message.topic))
            except Exception:
                self.bad_replies += 1
                continue
            self.tally.received(reply.turn_id, reply.outcome, now, repeat=reply.repeat)

    async def send(self, index: int, *, warmup: bool = False) -> None:
        """One intent from device ``index`` (round robin)."""
        name = self.names[index % len(self.names)]
        turn_id = f"{'w' if warmup else 't'}{uuid.uuid4().hex}"
        intent = Intent(
            tenant=TENANT,
            device=name,
            turn_id=turn_id,
            text="turn on the light",
            intent="HassTurnOn" if index % 2 == 0 else "HassTurnOff",
            slots={"name": LIGHTS[index % len(LIGHTS)]},
            expires_at=time.time() + self.tally.expiry_seconds,
        )
        self.tally.sent(turn_id, time.perf_counter())
        await self.clients[name].publish(intent.topic, intent.to_payload(), qos=1)

    async def close(self) -> None:
        """Disconnect every device."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(aiomqtt.MqttError):
            await self._stack.aclose()


async def run(settings: HubScaleSettings) -> dict[str, Any]:
    """Run the scale benchmark and return its figures."""
    _raise_fd_limit(settings.devices * 2 + 256)
    with (
        tempfile.TemporaryDirectory(prefix="konak-bench-") as tmp,
        Mosquitto() as broker,
    ):
        started = time.perf_counter()
        with local_hub(Path(tmp), broker, TENANT, [(name, None) for name in LIGHTS]) as hub:
            hub_ready_seconds = time.perf_counter() - started
            logger.info("hub healthy after %.2f s", hub_ready_seconds)
            figures = await _drive(broker, settings)
        return {
            **figures,
            "hub_start_to_healthy_seconds": round(hub_ready_seconds, 2),
            "hub_exit_status": hub.process.returncode,
        }


async def _drive(broker: Mosquitto, settings: HubScaleSettings) -> dict[str, Any]:
    fleet = Fleet(broker, settings.devices)
    try:
        t0 = time.perf_counter()
        await fleet.connect()
        connect_seconds = time.perf_counter() - t0
        logger.info("%d devices connected in %.2f s", settings.devices, connect_seconds)
        await _warm_up(fleet)
        total = int(settings.rate_per_second * settings.duration_seconds)
        interval = 1.0 / settings.rate_per_second
        t0 = time.perf_counter()
        for i in range(total):
            delay = t0 + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await fleet.send(i)
        send_seconds = time.perf_counter() - t0
        await _drain(fleet.tally)
        done_seconds = max(fleet.tally.last_reply_at - t0, send_seconds)
        logger.info("%d of %d unanswered after %.2f s", fleet.tally.unanswered, total, done_seconds)
    finally:
        await fleet.close()
    figures = fleet.tally.figures()
    return {
        "devices": settings.devices,
        "target_rate_per_second": settings.rate_per_second,
        **figures,
        "bad_replies": fleet.bad_replies,
        "outcomes": dict(fleet.tally.outcomes),
        "sustained_intents_per_second": round(figures["replies_received"] / done_seconds, 1),
        "offered_intents_per_second": round(total / send_seconds, 1),
        "last_send_to_last_reply_seconds": round(max(0.0, done_seconds - send_seconds), 2),
        "connect_all_devices_seconds": round(connect_seconds, 2),
    }


async def _drain(tally: Tally, stall_seconds: float = STALL_SECONDS) -> None:
    """Wait until every intent is answered, or no reply has come for ``stall_seconds``."""
    last_progress, answered = time.monotonic(), -1
    while tally.unanswered and time.monotonic() - last_progress < stall_seconds:
        if len(tally.first) != answered:
            last_progress, answered = time.monotonic(), len(tally.first)
        await asyncio.sleep(0.05)


async def _warm_up(fleet: Fleet) -> None:
    """Wait until konak-home answers: until its MCP session is up, intents have no route."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while fleet.tally.outcomes["ok"] == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("konak-home never answered a warm-up intent")
        await fleet.send(0, warmup=True)
        await asyncio.sleep(0.2)
    logger.info("warm-up done: %s", dict(fleet.tally.outcomes))
    fleet.tally.clear()

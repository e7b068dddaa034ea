"""Hub scale: N simulated devices send intents over the real broker to a real hub process,
which fulfils each with konak-home (an MCP server over stdio) and replies.

Measures sustained intents per second, intent -> reply latency, lost and duplicated
replies. Every device has its own broker login limited to its own topics.
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
from konak.devtools.localhub import READY_TIMEOUT_SECONDS, local_hub
from konak.devtools.mosquitto import AclRule, Mosquitto
from konak.protocol import Intent, Kind, Reply, decode_as, device_acl, subscription

logger = logging.getLogger(__name__)

TENANT: Final = "bench"
LIGHTS: Final = tuple(f"light {i}" for i in range(8))
CONNECT_CONCURRENCY: Final = 64
DRAIN_SECONDS: Final = 15.0


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
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.replies: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
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
            self.replies[reply.turn_id] += 1
            self.outcomes[reply.outcome] += 1
            sent = self.sent_at.get(reply.turn_id)
            if sent is not None and self.replies[reply.turn_id] == 1:
                self.latencies.append(now - sent)

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
        )
        self.sent_at[turn_id] = time.perf_counter()
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
        drain_deadline = time.monotonic() + DRAIN_SECONDS
        while len(fleet.replies) < total and time.monotonic() < drain_deadline:
            await asyncio.sleep(0.05)
        done_seconds = time.perf_counter() - t0
        logger.info("%d of %d replies after %.2f s", len(fleet.replies), total, done_seconds)
    finally:
        await fleet.close()
    answered = len(fleet.replies)
    return {
        "devices": settings.devices,
        "target_rate_per_second": settings.rate_per_second,
        "intents_sent": total,
        "replies_received": answered,
        "lost": total - answered,
        "duplicated": sum(n - 1 for n in fleet.replies.values() if n > 1),
        "bad_replies": fleet.bad_replies,
        "outcomes": dict(fleet.outcomes),
        "sustained_intents_per_second": round(answered / done_seconds, 1),
        "offered_intents_per_second": round(total / send_seconds, 1),
        "intent_to_reply": percentiles_ms(fleet.latencies),
        "connect_all_devices_seconds": round(connect_seconds, 2),
    }


async def _warm_up(fleet: Fleet) -> None:
    """Wait until konak-home answers: until its MCP session is up, intents have no route."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while fleet.outcomes["ok"] == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("konak-home never answered a warm-up intent")
        await fleet.send(0, warmup=True)
        await asyncio.sleep(0.2)
    logger.info("warm-up done: %s", dict(fleet.outcomes))
    fleet.sent_at.clear()
    fleet.latencies.clear()
    fleet.replies.clear()
    fleet.outcomes.clear()

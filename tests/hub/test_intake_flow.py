"""Ingest's intake with a fake broker client at its seam: an intent is acknowledged only
once its turn is claimed, and at most ``max_turns_in_flight`` turns run at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from konak.hub.ingest import Ingest
from konak.hub.metrics import HubMetrics
from konak.hub.settings import MqttSettings
from konak.protocol import Intent, Status


@dataclass
class FakeMessage:
    topic: str
    payload: bytes
    mid: int
    qos: int = 1


@dataclass
class FakePaho:
    """Records the acknowledgements ingest sends (paho's ``ack(mid, qos)``)."""

    acked: list[int] = field(default_factory=list)

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)


class FakeClient:
    """An aiomqtt client whose broker delivers ``messages`` and then nothing more."""

    def __init__(self, messages: list[FakeMessage]) -> None:
        self._client = FakePaho()
        self._messages = messages

    @property
    def messages(self) -> AsyncIterator[FakeMessage]:
        async def deliver() -> AsyncIterator[FakeMessage]:
            for message in self._messages:
                yield message
            await asyncio.Event().wait()  # the link stays up

        return deliver()


def _intent(n: int) -> FakeMessage:
    intent = Intent(tenant="acme", device="pi", turn_id=f"t-{n:010d}", text="x")
    return FakeMessage(intent.topic, intent.to_payload(), mid=n)


def _ingest(on_intent: Callable[[Intent, Callable[[], None]], Any], turns: int) -> Ingest:
    return Ingest(
        MqttSettings(max_turns_in_flight=turns, device_message_burst=100),
        HubMetrics(),
        on_status=lambda _: None,
        on_telemetry=lambda _: None,
        on_intent=on_intent,
    )


async def test_an_intent_is_acknowledged_only_once_its_turn_is_claimed() -> None:
    claim, finish = asyncio.Event(), asyncio.Event()
    acked_before_claim: list[int] = []
    client = FakeClient([_intent(1)])

    async def on_intent(intent: Intent, claimed: Callable[[], None]) -> None:
        await claim.wait()
        acked_before_claim.extend(client._client.acked)
        claimed()
        await finish.wait()

    ingest = _ingest(on_intent, turns=4)
    reader = asyncio.create_task(ingest._read(client))  # type: ignore[arg-type]
    await ingest.wait_dispatched(1, 5)
    claim.set()
    finish.set()
    await asyncio.wait_for(ingest.drain(5), 5)
    reader.cancel()

    assert acked_before_claim == []
    assert client._client.acked == [1]


async def test_a_message_that_starts_no_turn_is_acknowledged_at_once() -> None:
    status = Status(tenant="acme", device="pi", state="online")
    client = FakeClient(
        [
            FakeMessage(status.topic, status.to_payload(), mid=7),
            FakeMessage("konak/v1/acme/pi/intent", b"not json", mid=8),
        ]
    )

    async def on_intent(intent: Intent, claimed: Callable[[], None]) -> None:
        raise AssertionError("no turn expected")

    ingest = _ingest(on_intent, turns=4)
    reader = asyncio.create_task(ingest._read(client))  # type: ignore[arg-type]
    await ingest.wait_dispatched(2, 5)
    reader.cancel()

    assert client._client.acked == [7, 8]


async def test_no_more_than_max_turns_in_flight_run_and_the_rest_wait_unacknowledged() -> None:
    client = FakeClient([_intent(n) for n in range(1, 11)])
    running: set[str] = set()
    most = 0
    release = asyncio.Event()
    two_running = asyncio.Event()

    async def on_intent(intent: Intent, claimed: Callable[[], None]) -> None:
        nonlocal most
        claimed()
        running.add(intent.turn_id)
        most = max(most, len(running))
        if len(running) == 2:
            two_running.set()
        await release.wait()
        running.discard(intent.turn_id)

    ingest = _ingest(on_intent, turns=2)
    reader = asyncio.create_task(ingest._read(client))  # type: ignore[arg-type]
    await asyncio.wait_for(two_running.wait(), 5)
    held = (ingest.dispatched, sorted(client._client.acked))
    release.set()
    await ingest.wait_dispatched(10, 5)
    await asyncio.wait_for(ingest.drain(5), 5)
    reader.cancel()

    assert held == (2, [1, 2])  # the third waits, unacknowledged, while two run
    assert most == 2
    assert sorted(client._client.acked) == list(range(1, 11))

"""The console's event broker: tenant-keyed fan-out, per-role filtering, bounded queues."""

from __future__ import annotations

import pytest

from konak.hub.events import (
    MAX_SUBSCRIBERS_PER_TENANT,
    MAX_SUBSCRIBERS_PER_USER,
    QUEUE_EVENTS,
    Event,
    EventBroker,
    TooManySubscribers,
)
from konak.hub.security.rbac import ROLE_ACTIONS, Action, Role

MEMBER = ROLE_ACTIONS[Role.MEMBER]
READONLY = ROLE_ACTIONS[Role.READONLY]
DEVICE = Event(
    "device", {"device": "pi", "last_turn": {"text": "hi"}}, redact={"last_turn": Action.TURNS_READ}
)
TURN = Event("turn", {"turn_id": "t-1", "text": "hi"}, Action.TURNS_READ)


async def test_a_tenants_events_reach_only_that_tenants_subscribers() -> None:
    broker = EventBroker()
    acme, globex = broker.subscribe("acme", MEMBER), broker.subscribe("globex", MEMBER)

    broker.publish("acme", DEVICE)
    broker.close()

    assert await acme.get(1) == DEVICE
    assert await acme.get(1) is None
    assert await globex.get(1) is None


async def test_a_readonly_subscriber_gets_no_transcripts() -> None:
    broker = EventBroker()
    member, readonly = broker.subscribe("acme", MEMBER), broker.subscribe("acme", READONLY)

    for event in (DEVICE, TURN):
        broker.publish("acme", event)
    broker.close()

    assert [await member.get(1) for _ in range(3)] == [DEVICE, TURN, None]
    assert await readonly.get(1) == Event("device", {"device": "pi"})
    assert await readonly.get(1) is None


async def test_a_subscriber_that_falls_behind_is_disconnected_and_others_go_on() -> None:
    broker = EventBroker()
    slow, other = broker.subscribe("acme", MEMBER), broker.subscribe("acme", MEMBER)

    for n in range(QUEUE_EVENTS + 1):
        broker.publish("acme", Event("device", {"n": n}))
        assert await other.get(1) == Event("device", {"n": n})

    got = [await slow.get(1) for _ in range(QUEUE_EVENTS + 1)]
    assert got[-1] is None
    assert slow.overflowed
    assert broker.subscribers("acme") == 1


async def test_nothing_waits_forever_and_a_closed_broker_ends_new_subscribers_at_once() -> None:
    broker = EventBroker()
    sub = broker.subscribe("acme", MEMBER)

    with pytest.raises(TimeoutError):
        await sub.get(0.01)
    broker.close()

    assert await broker.subscribe("acme", MEMBER).get(1) is None
    assert broker.subscribers("acme") == 0


def test_a_tenant_and_a_user_in_it_have_a_bounded_number_of_streams() -> None:
    broker = EventBroker()
    subs = [broker.subscribe("acme", MEMBER, f"u-{n}") for n in range(MAX_SUBSCRIBERS_PER_TENANT)]
    with pytest.raises(TooManySubscribers):
        broker.subscribe("acme", MEMBER, "u-new")
    subs[0].end()
    broker.subscribe("acme", MEMBER, "u-new")
    for _ in range(MAX_SUBSCRIBERS_PER_USER):
        broker.subscribe("globex", MEMBER, "u-ann")

    with pytest.raises(TooManySubscribers):
        broker.subscribe("globex", MEMBER, "u-ann")
    broker.subscribe("globex", MEMBER, "u-bob")

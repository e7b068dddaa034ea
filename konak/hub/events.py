"""The hub's live events for the console: one in-process broker, keyed by tenant.

A publisher hands the broker an ``Event`` for one tenant; every subscriber of that tenant
whose role holds the event's action gets it, without the fields its role may not read
(``redact``: a device's ``last_turn`` needs turns.read). Each subscriber has a bounded
queue: one that falls behind is dropped (its stream ends, the console reconnects and
reloads), so a slow reader never holds up the hub or the other subscribers. Closing the
broker ends every stream at once (a hub stopping does not wait for them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from konak.hub.security.rbac import Action

logger = logging.getLogger(__name__)

QUEUE_EVENTS: Final = 256  # per subscriber; beyond this it is disconnected
MAX_SUBSCRIBERS_PER_TENANT: Final = 100
MAX_SUBSCRIBERS_PER_USER: Final = 10  # one user's tabs cannot take a tenant's streams


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a tenant: its name, its JSON data, the action a subscriber needs for
    it, and the data fields that need a further action."""

    name: str
    data: Mapping[str, Any]
    action: Action = Action.DEVICES_READ
    redact: Mapping[str, Action] = field(default_factory=dict)

    def for_actions(self, actions: frozenset[Action]) -> Event | None:
        """The event as a holder of ``actions`` may see it; None when it may not at all."""
        if self.action not in actions:
            return None
        if all(needs in actions for needs in self.redact.values()):
            return self
        return Event(self.name, visible(self.data, self.redact, actions), self.action)


def knowledge_job(view: Mapping[str, Any]) -> Event:
    """A knowledge import or export job started, went on or ended (for knowledge.read)."""
    return Event("knowledge_job", view, Action.KNOWLEDGE_READ)


def visible(
    data: Mapping[str, Any], redact: Mapping[str, Action], actions: frozenset[Action]
) -> dict[str, Any]:
    """``data`` without the fields whose action (``redact``) is not among ``actions``."""
    return {k: v for k, v in data.items() if k not in redact or redact[k] in actions}


class TooManySubscribers(Exception):
    """The tenant, or the user in it, has as many streams open as allowed."""


class Subscription:
    """One subscriber's queue; iterate it for its events until it ends."""

    def __init__(
        self, broker: EventBroker, tenant: str, actions: frozenset[Action], user: str
    ) -> None:
        self.broker = broker
        self.tenant = tenant
        self.user = user
        self.actions = actions
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_EVENTS + 1)
        self.overflowed = False
        self.ended = False

    def offer(self, event: Event) -> None:
        """Queue an event (filtered for this subscriber); end the stream when it is full."""
        if self.ended:
            return
        seen = event.for_actions(self.actions)
        if seen is None:
            return
        if self._queue.qsize() >= QUEUE_EVENTS:
            self.overflowed = True
            logger.info("event subscriber of tenant %s fell behind; disconnected", self.tenant)
            self.end()
            return
        self._queue.put_nowait(seen)

    def end(self) -> None:
        """End the stream (the iterator stops after what is queued)."""
        if not self.ended:
            self.ended = True
            self._queue.put_nowait(None)  # the one slot kept free for it
            self.broker.forget(self)

    async def get(self, timeout_seconds: float) -> Event | None:
        """The next event, or None once the stream ended; raises TimeoutError after
        ``timeout_seconds`` without one."""
        async with asyncio.timeout(timeout_seconds):
            return await self._queue.get()


class EventBroker:
    """Fan-out of each tenant's events to its subscribers."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}
        self.closed = False

    def subscribe(self, tenant: str, actions: frozenset[Action], user: str = "") -> Subscription:
        """A new subscriber of ``tenant`` holding ``actions``; ``end()`` it when done."""
        subscribers = self._subscribers.setdefault(tenant, set())
        if len(subscribers) >= MAX_SUBSCRIBERS_PER_TENANT:
            raise TooManySubscribers(tenant)
        if sum(1 for s in subscribers if s.user == user) >= MAX_SUBSCRIBERS_PER_USER:
            raise TooManySubscribers(f"{tenant}/{user}")
        sub = Subscription(self, tenant, actions, user)
        if self.closed:
            sub.end()
        else:
            subscribers.add(sub)
        return sub

    def forget(self, sub: Subscription) -> None:
        """Drop a subscriber (its stream ended)."""
        subscribers = self._subscribers.get(sub.tenant)
        if subscribers is not None:
            subscribers.discard(sub)
            if not subscribers:
                del self._subscribers[sub.tenant]

    def publish(self, tenant: str, event: Event) -> None:
        """Give ``event`` to every subscriber of ``tenant`` (never blocks)."""
        for sub in list(self._subscribers.get(tenant, ())):
            sub.offer(event)

    def subscribers(self, tenant: str) -> int:
        """How many streams of ``tenant`` are open."""
        return len(self._subscribers.get(tenant, ()))

    def close(self) -> None:
        """End every stream (the hub is stopping); later subscribers end at once."""
        self.closed = True
        for subscribers in list(self._subscribers.values()):
            for sub in list(subscribers):
                sub.end()

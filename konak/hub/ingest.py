"""MQTT ingest: one supervised broker connection that validates every message.

The hub subscribes to every device->hub kind of every tenant. Each payload goes through
the contract's ``decode`` (which also rejects a payload whose tenant/device disagree with
its topic). The sender's identity is the topic, which the broker ACL binds to the device's
own login, never the payload; each device has a token bucket (a flood from one device is
dropped, not queued in front of everyone else's messages), and on a hub that enrols
devices only enrolled, unrevoked ones are heard. A bad message is logged with its reason,
counted, and dropped; ingestion never stops because of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from konak.hub.auth.errors import ApiError, Forbidden
from konak.hub.auth.ratelimit import Clock, TokenBuckets
from konak.hub.auth.rbac import Action, Identity, Resource, authorize
from konak.hub.auth.settings import RateLimit
from konak.hub.metrics import HubMetrics
from konak.hub.settings import MqttSettings
from konak.protocol import (
    SPECS,
    Intent,
    Kind,
    Message,
    ProtocolError,
    Status,
    Telemetry,
    Wake,
    decode,
    parse_topic,
    subscription,
)

if TYPE_CHECKING:
    import aiomqtt

logger = logging.getLogger(__name__)

SESSION_EXPIRY_SECONDS: Final = 3600
PUBLISH_WAIT_SECONDS: Final = 10.0
INGEST_KINDS: Final = tuple(spec.kind for spec in SPECS.values() if spec.device_publishes)
# The action each message kind takes; a kind missing here is refused (deny by default).
KIND_ACTIONS: Final = {
    Kind.STATUS: Action.STATUS_SEND,
    Kind.TELEMETRY: Action.TELEMETRY_SEND,
    Kind.WAKE: Action.WAKE_SEND,
    Kind.INTENT: Action.INTENT_SEND,
}


class Ingest:
    """Receives, validates and dispatches device messages; publishes hub messages."""

    def __init__(
        self,
        settings: MqttSettings,
        metrics: HubMetrics,
        *,
        on_status: Callable[[Status], None],
        on_telemetry: Callable[[Telemetry], None],
        on_intent: Callable[[Intent], Awaitable[None]],
        on_wake: Callable[[Wake], None] | None = None,
        on_seen: Callable[[Message], None] | None = None,
        enrolled: Callable[[str, str], bool] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.on_status = on_status
        self.on_telemetry = on_telemetry
        self.on_intent = on_intent
        self.on_wake = on_wake
        self.on_seen = on_seen
        # (tenant, device) -> enrolled and not revoked; None: the broker's logins decide.
        self.enrolled = enrolled
        self._buckets = TokenBuckets(
            RateLimit(settings.device_message_burst, settings.device_messages_per_second), clock
        )
        self._limited: set[str] = set()  # devices over their rate, logged once per episode
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.dispatched = 0
        self._dispatched_changed = asyncio.Condition()

    def _make_client(self) -> aiomqtt.Client:
        import aiomqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        # A persistent session: the broker keeps QoS 1 intents while the hub restarts.
        props.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        s = self.settings
        return aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=s.password or None,
            identifier=s.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            keepalive=30,
            # Without TCP_NODELAY, Nagle + delayed ACKs add ~40 ms to every QoS 1 hop.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )

    async def run(self) -> None:
        """Stay connected (reconnecting after ``reconnect_seconds``) until cancelled."""
        import aiomqtt

        while True:
            try:
                async with self._make_client() as client:
                    for kind in INGEST_KINDS:
                        await client.subscribe(subscription(kind), qos=SPECS[kind].qos)
                    self._client = client
                    self.connected.set()
                    logger.info("ingest connected to %s:%d", self.settings.host, self.settings.port)
                    async for message in client.messages:
                        self.dispatch(str(message.topic), message.payload)
                        async with self._dispatched_changed:
                            self.dispatched += 1
                            self._dispatched_changed.notify_all()
            except aiomqtt.MqttError as exc:
                logger.warning(
                    "broker link lost (%s); reconnecting in %.1fs",
                    exc,
                    self.settings.reconnect_seconds,
                )
            finally:
                self._client = None
                self.connected.clear()
            await asyncio.sleep(self.settings.reconnect_seconds)  # reconnect backoff

    def dispatch(self, topic: str, payload: object) -> None:
        """Validate one message and hand it on; never raises."""
        try:
            if not isinstance(payload, bytes | bytearray | str):
                raise ProtocolError("wrong_type", "payload is not bytes")
            msg = decode(topic, bytes(payload) if not isinstance(payload, str) else payload)
            sender = parse_topic(topic)
        except ProtocolError as exc:
            self.metrics.drops.labels(exc.code).inc()
            logger.warning("dropped message on %.200s: %s [%s]", topic, exc.message, exc.code)
            return
        kind = msg.KIND
        self.metrics.messages_in.labels(kind.value).inc()
        if not SPECS[kind].device_publishes:
            self.metrics.drops.labels("wrong_direction").inc()
            logger.warning("dropped %s message on %.200s: not a device->hub kind", kind, topic)
            return
        if not self._admit(sender.tenant, sender.device):
            return
        try:
            # The topic is the sender's identity (the broker ACL lets a login publish only
            # on its own device's topics); the payload only says what the message is about.
            action = KIND_ACTIONS.get(kind)
            if action is None:
                raise ApiError(f"no action for {kind} messages", code="forbidden")
            identity = Identity.device(sender.tenant, sender.device)
            authorize(identity, action, Resource(msg.tenant, kind.value, msg.device))
            if msg.device != sender.device:
                raise Forbidden("a device may only speak for itself")
        except ApiError as exc:
            self.metrics.drops.labels("forbidden").inc()
            logger.warning("dropped %s message on %.200s: %s", kind, topic, exc.message)
            return
        if self.enrolled is not None and not self.enrolled(sender.tenant, sender.device):
            self.metrics.drops.labels("not_enrolled").inc()
            logger.warning(
                "dropped %s message from %s/%s: not an enrolled, unrevoked device",
                kind,
                sender.tenant,
                sender.device,
            )
            return
        try:
            self._handle(msg)
        except Exception:  # callback wrapper: one bad message never stops ingestion
            self.metrics.drops.labels("handler_error").inc()
            logger.exception("handling %s from %s/%s failed", kind, msg.tenant, msg.device)

    def _admit(self, tenant: str, device: str) -> bool:
        """Spend one of the device's tokens; a message over its rate is dropped and counted."""
        key = f"{tenant}/{device}"
        if self._buckets.take(key) == 0.0:
            self._limited.discard(key)
            return True
        self.metrics.drops.labels("rate_limited").inc()
        if key not in self._limited:  # one line per flood, not one per message
            self._limited.add(key)
            logger.warning("device %s/%s is over its message rate; dropping", tenant, device)
        return False

    def _handle(self, msg: Message) -> None:
        if self.on_seen is not None and not isinstance(msg, Status):
            self.on_seen(msg)
        if isinstance(msg, Status):
            self.on_status(msg)
        elif isinstance(msg, Telemetry):
            self.on_telemetry(msg)
        elif isinstance(msg, Wake):
            if self.on_wake is not None:
                self.on_wake(msg)
        elif isinstance(msg, Intent):
            task = asyncio.get_running_loop().create_task(self._intent(msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _intent(self, intent: Intent) -> None:
        try:
            await self.on_intent(intent)
        except asyncio.CancelledError:
            raise
        except Exception:  # task wrapper: a failed turn is logged, the hub carries on
            self.metrics.intents.labels("error").inc()
            logger.exception("turn %s/%s failed", intent.tenant, intent.turn_id)

    async def wait_dispatched(self, count: int, timeout_seconds: float) -> None:
        """Wait until ``count`` messages in all have been dispatched (tests, diagnostics)."""
        async with asyncio.timeout(timeout_seconds), self._dispatched_changed:
            await self._dispatched_changed.wait_for(lambda: self.dispatched >= count)

    async def publish(self, msg: Message) -> None:
        """Publish a hub->device message with its kind's QoS and retain flag."""
        spec = SPECS[msg.KIND]
        async with asyncio.timeout(PUBLISH_WAIT_SECONDS):
            await self.connected.wait()
            client = self._client
            assert client is not None
            await client.publish(msg.topic, msg.to_payload(), qos=spec.qos, retain=spec.retain)
        self.metrics.messages_out.labels(msg.KIND.value).inc()

    async def close(self) -> None:
        """Cancel turns still running."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


__all__ = ["INGEST_KINDS", "Ingest", "Kind"]

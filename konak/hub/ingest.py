"""MQTT ingest: one supervised broker connection that validates every message.

The hub subscribes to every device->hub kind of every tenant. Each payload goes through
the contract's ``decode`` (which also rejects a payload whose tenant/device disagree with
its topic). The sender's identity is the topic, which the broker ACL binds to the device's
own login, never the payload; each device has a token bucket (a flood from one device is
dropped, not queued in front of everyone else's messages), and on a hub that enrols
devices only enrolled, unrevoked ones are heard. A bad message is logged with its reason,
counted, and dropped; ingestion never stops because of one.

Nothing is lost when the hub dies: the hub acknowledges a message to the broker (paho's
manual acknowledgements) only once it is handled, an intent only once its turn is claimed
in the store. At most ``max_turns_in_flight`` turns run at once, and the hub announces the
same number as its MQTT v5 Receive Maximum, so the backlog under overload waits in the
broker (in the hub's persistent session), not in the hub's memory. An intent the hub had
received but not claimed when it died is redelivered by the broker to the next hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from konak.hub.errors import PublishError
from konak.hub.metrics import HubMetrics
from konak.hub.security.errors import Forbidden, SecurityError
from konak.hub.security.ratelimit import Clock, TokenBuckets
from konak.hub.security.rbac import Action, Identity, Resource, authorize
from konak.hub.security.settings import RateLimit
from konak.hub.settings import MqttSettings
from konak.protocol import (
    SPECS,
    Intent,
    Kind,
    Message,
    ProtocolError,
    Status,
    Telemetry,
    decode,
    parse_topic,
    subscription,
)

if TYPE_CHECKING:
    import aiomqtt
    import paho.mqtt.client as paho

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

Ack = Callable[[], None]
# Runs one turn; calls its ``Ack`` once the turn's claim is committed.
IntentHandler = Callable[[Intent, Ack], Awaitable[None]]


def _no_ack() -> None:
    """The acknowledgement of a message that needs none (tests, QoS 0)."""


class Ingest:
    """Receives, validates and dispatches device messages; publishes hub messages."""

    def __init__(
        self,
        settings: MqttSettings,
        metrics: HubMetrics,
        *,
        on_status: Callable[[Status], None],
        on_telemetry: Callable[[Telemetry], None],
        on_intent: IntentHandler,
        on_seen: Callable[[Message], None] | None = None,
        enrolled: Callable[[str, str], bool] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.on_status = on_status
        self.on_telemetry = on_telemetry
        self.on_intent = on_intent
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
        self._room = asyncio.Event()  # set while fewer than max_turns_in_flight turns run
        self._room.set()
        self.accepting = True  # False once intake stopped (SIGTERM)
        self._reader: asyncio.Task[None] | None = None
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
        # The broker sends at most this many unacknowledged QoS 1 messages at a time.
        props.ReceiveMaximum = s.max_turns_in_flight
        client = aiomqtt.Client(
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
            # Every turn in flight may be sending its reply: paho's default window of 20
            # unacknowledged publishes made replies queue for seconds under load.
            max_inflight_messages=s.max_turns_in_flight,
        )
        # aiomqtt 2.5 has no manual acknowledgements of its own; paho underneath has.
        _paho(client).manual_ack_set(True)
        return client

    async def run(self) -> None:
        """Stay connected (reconnecting after ``reconnect_seconds``) until cancelled.

        Once intake is stopped the link stays up, so turns still running can reply."""
        import aiomqtt

        while True:
            try:
                async with self._make_client() as client:
                    for kind in INGEST_KINDS:
                        await client.subscribe(subscription(kind), qos=SPECS[kind].qos)
                    self._client = client
                    self.connected.set()
                    self.metrics.broker_connected.set(1)
                    logger.info("ingest connected to %s:%d", self.settings.host, self.settings.port)
                    if self.accepting:
                        reader = asyncio.create_task(self._read(client), name="ingest-read")
                        self._reader = reader
                        try:
                            await asyncio.wait({reader})
                        finally:
                            reader.cancel()
                            self._reader = None
                        if not reader.cancelled():
                            reader.result()  # the link's error: reconnect
                    # Intake stopped: hold the link for the replies of turns still running
                    # (reconnecting if it drops); what arrives stays unacknowledged, so the
                    # broker gives it to the next hub.
                    async for _ in client.messages:
                        pass
            except aiomqtt.MqttError as exc:
                logger.warning(
                    "broker link lost (%s); reconnecting in %.1fs",
                    exc,
                    self.settings.reconnect_seconds,
                )
            finally:
                self._client = None
                self.connected.clear()
                self.metrics.broker_connected.set(0)
            await asyncio.sleep(self.settings.reconnect_seconds)  # reconnect backoff

    async def _read(self, client: aiomqtt.Client) -> None:
        """Hand on each message, waiting while ``max_turns_in_flight`` turns run."""
        async for message in client.messages:
            await self._room.wait()  # meanwhile the broker holds the backlog
            ack = functools.partial(_acknowledge, client, message.mid, message.qos)
            self.dispatch(str(message.topic), message.payload, ack)
            async with self._dispatched_changed:
                self.dispatched += 1
                self._dispatched_changed.notify_all()

    def stop_intake(self) -> None:
        """Take no more messages (SIGTERM); what the broker still holds waits for the next
        hub. Turns already running go on, and the link stays up for their replies."""
        self.accepting = False
        if self._reader is not None:
            self._reader.cancel()

    @property
    def turns_in_flight(self) -> int:
        """Turns running now."""
        return len(self._tasks)

    def dispatch(self, topic: str, payload: object, ack: Ack = _no_ack) -> None:
        """Validate one message and hand it on; never raises.

        ``ack`` acknowledges the message to the broker: at once for a message handled or
        dropped here, by the turn once it is claimed for an intent."""
        if not self._dispatch(topic, payload, ack):
            ack()

    def _dispatch(self, topic: str, payload: object, ack: Ack) -> bool:
        """Whether a turn took the message over (and with it its acknowledgement)."""
        try:
            if not isinstance(payload, bytes | bytearray | str):
                raise ProtocolError("wrong_type", "payload is not bytes")
            msg = decode(topic, bytes(payload) if not isinstance(payload, str) else payload)
            sender = parse_topic(topic)
        except ProtocolError as exc:
            self.metrics.drops.labels(exc.code).inc()
            logger.warning("dropped message on %.200s: %s [%s]", topic, exc.message, exc.code)
            return False
        kind = msg.KIND
        self.metrics.messages_in.labels(kind.value).inc()
        if not SPECS[kind].device_publishes:
            self.metrics.drops.labels("wrong_direction").inc()
            logger.warning("dropped %s message on %.200s: not a device->hub kind", kind, topic)
            return False
        if not self._admit(sender.tenant, sender.device):
            return False
        try:
            # The topic is the sender's identity (the broker ACL lets a login publish only
            # on its own device's topics); the payload only says what the message is about.
            action = KIND_ACTIONS.get(kind)
            if action is None:
                raise Forbidden(f"no action for {kind} messages")
            identity = Identity.device(sender.tenant, sender.device)
            authorize(identity, action, Resource(msg.tenant, kind.value, msg.device))
            if msg.device != sender.device:
                raise Forbidden("a device may only speak for itself")
        except SecurityError as exc:
            self.metrics.drops.labels("forbidden").inc()
            logger.warning("dropped %s message on %.200s: %s", kind, topic, exc.message)
            return False
        if self.enrolled is not None and not self.enrolled(sender.tenant, sender.device):
            self.metrics.drops.labels("not_enrolled").inc()
            logger.warning(
                "dropped %s message from %s/%s: not an enrolled, unrevoked device",
                kind,
                sender.tenant,
                sender.device,
            )
            return False
        try:
            return self._handle(msg, ack)
        except Exception:  # callback wrapper: one bad message never stops ingestion
            self.metrics.drops.labels("handler_error").inc()
            logger.exception("handling %s from %s/%s failed", kind, msg.tenant, msg.device)
            return False

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

    def _handle(self, msg: Message, ack: Ack) -> bool:
        if self.on_seen is not None and not isinstance(msg, Status):
            self.on_seen(msg)
        if isinstance(msg, Status):
            self.on_status(msg)
        elif isinstance(msg, Telemetry):
            self.on_telemetry(msg)
        elif isinstance(msg, Intent):
            task = asyncio.get_running_loop().create_task(self._intent(msg, ack))
            self._tasks.add(task)
            if len(self._tasks) >= self.settings.max_turns_in_flight:
                self._room.clear()
            task.add_done_callback(self._turn_done)
            return True
        return False

    def _turn_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if len(self._tasks) < self.settings.max_turns_in_flight:
            self._room.set()

    async def _intent(self, intent: Intent, ack: Ack) -> None:
        try:
            await self.on_intent(intent, ack)
        except asyncio.CancelledError:
            raise
        except Exception:  # task wrapper: a failed turn is logged, the hub carries on
            # Not acknowledged unless claimed: the broker redelivers it to the next session.
            self.metrics.intents.labels("error").inc()
            logger.exception("turn %s/%s failed", intent.tenant, intent.turn_id)

    async def wait_dispatched(self, count: int, timeout_seconds: float) -> None:
        """Wait until ``count`` messages in all have been dispatched (tests, diagnostics)."""
        async with asyncio.timeout(timeout_seconds), self._dispatched_changed:
            await self._dispatched_changed.wait_for(lambda: self.dispatched >= count)

    async def publish(self, msg: Message) -> None:
        """Publish a hub->device message with its kind's QoS and retain flag."""
        import aiomqtt

        spec = SPECS[msg.KIND]
        try:
            async with asyncio.timeout(PUBLISH_WAIT_SECONDS):
                await self.connected.wait()
                client = self._client
                assert client is not None
                await client.publish(msg.topic, msg.to_payload(), qos=spec.qos, retain=spec.retain)
        except (TimeoutError, aiomqtt.MqttError) as exc:
            raise PublishError(
                f"{msg.KIND.value} to {msg.topic} not acknowledged by the broker within "
                f"{PUBLISH_WAIT_SECONDS:.0f}s: {exc or 'timed out'}"
            ) from exc
        self.metrics.messages_out.labels(msg.KIND.value).inc()

    async def drain(self, timeout_seconds: float) -> int:
        """Wait, bounded, for the turns running to finish; how many are still running."""
        if self._tasks:
            logger.info("waiting up to %.1fs for %d turn(s)", timeout_seconds, len(self._tasks))
            await asyncio.wait(set(self._tasks), timeout=timeout_seconds)
        return len(self._tasks)

    async def close(self) -> None:
        """Cancel turns still running (they stay claimed, to be failed and answered)."""
        if self._tasks:
            logger.warning("cancelling %d turn(s) still running", len(self._tasks))
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _paho(client: aiomqtt.Client) -> paho.Client:
    """The paho client under an aiomqtt one (for its manual acknowledgements)."""
    return client._client


def _acknowledge(client: aiomqtt.Client, mid: int, qos: int) -> None:
    """PUBACK one received message on the connection it came in on. After a reconnect the
    old connection is gone and this does nothing: the broker redelivers the message."""
    if qos > 0:
        _paho(client).ack(mid, qos)


__all__ = ["INGEST_KINDS", "Ack", "Ingest", "IntentHandler", "Kind"]

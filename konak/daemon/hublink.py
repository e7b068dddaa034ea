"""The MQTT 5 link to the hub: status with last will, intents from the outbox, replies.

paho's network thread reconnects by itself; a sender thread publishes the outbox's
oldest intent (QoS 1, with an MQTT message expiry from its ``expires_at``) and waits for
the broker's PUBACK, so intents arrive in order. The PUBACK does not remove the intent:
a broker that crashes before saving it, or that lost the hub's session, drops it. The
intent stays queued until the hub's reply, and is sent again after every reconnect and
every ``hub.resend_seconds`` until then (the hub runs a turn id once). A PUBACK with a
failure reason code (>= 0x80, e.g. 0x87 Not authorized) is a final refusal, and an
intent past its expiry is not sent: either goes to the outbox's dead letters.
"""

from __future__ import annotations

import logging
import math
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from konak.daemon.errors import QueueError
from konak.daemon.outbox import EXPIRED, REFUSED, Outbox, Queued
from konak.daemon.settings import DeviceSettings, HubLinkSettings
from konak.protocol import (
    SPECS,
    Intent,
    Kind,
    Message,
    ProtocolError,
    Reply,
    Status,
    build_topic,
    decode,
)
from konak.provisioning.dynsec import device_client_id

logger = logging.getLogger(__name__)

POLL_SECONDS: Final = 0.5
MessageHandler = Callable[[Message], None]


class PendingAck:
    """The broker's answer to one publish, once it has come."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._code: ReasonCode | None = None

    def set(self, code: ReasonCode) -> None:
        """Record the PUBACK's reason code."""
        self._code = code
        self._done.set()

    def wait(self, timeout_seconds: float) -> ReasonCode | None:
        """The PUBACK's reason code, or None if it has not come within the timeout."""
        return self._code if self._done.wait(timeout_seconds) else None


class Acks:
    """Matches PUBACKs to the publishes waiting for them, for one publishing thread.

    paho calls ``on_publish`` on its network thread while holding its own lock, and
    ``publish()`` takes that lock too, so no lock of ours is held across ``publish()``.
    A PUBACK can then come before ``publish()`` has returned the mid to wait for; while
    a publish is under way, such early PUBACKs are kept and claimed by mid afterwards.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[int, PendingAck] = {}
        self._early: dict[int, ReasonCode] = {}
        self._publishing = False

    def publish(self, send: Callable[[], int]) -> PendingAck:
        """Call ``send`` (which publishes and returns the mid) and return its pending ack."""
        with self._lock:
            self._publishing = True
        try:
            mid = send()
        except BaseException:
            with self._lock:
                self._publishing = False
                self._early.clear()
            raise
        pending = PendingAck()
        with self._lock:
            # One critical section: a PUBACK is either already in ``_early`` or will find
            # the waiter, never neither.
            self._publishing = False
            code = self._early.pop(mid, None)
            self._early.clear()
            if code is None:
                self._waiting[mid] = pending
        if code is not None:
            pending.set(code)
        return pending

    def received(self, mid: int, code: ReasonCode) -> None:
        """A PUBACK (from paho's network thread)."""
        with self._lock:
            pending = self._waiting.pop(mid, None)
            if pending is None:
                # Another message's ack (status, telemetry), or ours ahead of its mid.
                if self._publishing:
                    self._early[mid] = code
                return
        pending.set(code)


class HubLink:
    """Owns the paho client and the outbox sender thread."""

    def __init__(
        self,
        device: DeviceSettings,
        settings: HubLinkSettings,
        outbox: Outbox,
        on_message: MessageHandler,
        status: Callable[[], Status],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.device, self.settings, self.outbox = device, settings, outbox
        self.clock = clock
        self.on_message = on_message
        self.status = status
        self.connected = threading.Event()
        self.rejected = 0
        self._stop = threading.Event()
        client_id = device_client_id(device.tenant, device.device)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if settings.username is not None:
            self.client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            self.client.tls_set(
                ca_certs=str(settings.ca_file) if settings.ca_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        offline = Status(tenant=device.tenant, device=device.device, state="offline")
        self.client.will_set(offline.topic, offline.to_payload(), qos=1, retain=True)
        self.client.reconnect_delay_set(1, max(1, int(settings.reconnect_seconds * 4)))
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.last_error: str | None = None
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self._acks = Acks()
        self._sender = threading.Thread(target=self._send_loop, name="konak-outbox", daemon=True)

    def topic(self, kind: Kind) -> str:
        """This device's topic of ``kind``."""
        return build_topic(self.device.tenant, self.device.device, kind)

    def start(self) -> None:
        """Connect in the background (the broker may be away) and start sending."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.session_expiry_seconds
        self.client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_seconds,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()
        self._sender.start()

    def stop(self) -> None:
        """Publish offline, disconnect and stop the threads; queued intents stay queued."""
        self._stop.set()
        with self.outbox.changed:
            self.outbox.changed.notify_all()
        if self.connected.is_set():
            offline = Status(tenant=self.device.tenant, device=self.device.device, state="offline")
            info = self.client.publish(offline.topic, offline.to_payload(), qos=1, retain=True)
            info.wait_for_publish(1.0)
        self.client.disconnect()
        self.client.loop_stop()
        self._sender.join(timeout=2.0)

    def publish(self, msg: Message) -> None:
        """Publish a message now if connected (status, wake, telemetry); else drop it."""
        if not self.connected.is_set():
            return
        spec = SPECS[msg.KIND]
        self.client.publish(msg.topic, msg.to_payload(), qos=spec.qos, retain=spec.retain)

    def queue(self, intent: Intent) -> None:
        """Persist an intent for sending (in order, until its ``expires_at``)."""
        self.outbox.put(intent.turn_id, intent.topic, intent.to_payload(), intent.expires_at)

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: Any, rc: Any, props: object
    ) -> None:
        if rc.is_failure:
            logger.warning("broker refused the connection: %s", rc)
            return
        logger.info("connected to the broker %s:%d", self.settings.host, self.settings.port)
        self.last_error = None
        try:
            # A new connection may be to a broker that lost what it acknowledged (a crash
            # before its autosave, the hub's session gone): send the unanswered again.
            resent = self.outbox.resend_all()
        except QueueError:
            logger.exception("cannot mark the unanswered intents for resending")
        else:
            if resent:
                logger.info("sending %d unanswered intent(s) again", resent)
        for kind in (Kind.REPLY, Kind.CONFIG, Kind.CMD):
            client.subscribe(self.topic(kind), qos=1)
        self.connected.set()
        self.publish(self.status())

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        # paho calls this inside its ``except OSError``: the exception is the active one.
        exc = sys.exc_info()[1]
        where = f"{self.settings.host}:{self.settings.port}"
        if isinstance(exc, ssl.SSLError):
            error = f"TLS to the broker {where} failed: {exc} (check hub.ca_file and hub.host)"
        else:
            error = f"cannot connect to the broker {where}: {exc}"
        if error != self.last_error:  # once per distinct failure, not once per retry
            logger.error("%s; retrying", error)
        self.last_error = error

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, rc: Any, props: object
    ) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            logger.warning("lost the broker (%s); reconnecting", rc)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            message = decode(msg.topic, bytes(msg.payload))
        except ProtocolError as exc:
            self.rejected += 1
            logger.warning("rejected a message on %s: %s [%s]", msg.topic, exc.message, exc.code)
            return
        if isinstance(message, Reply):
            try:
                if self.outbox.answered(message.turn_id):
                    logger.info("intent %s answered (%s)", message.turn_id, message.outcome)
            except QueueError:  # a full disk: the turn still gets its reply; the intent
                # stays queued and is sent again, and the hub repeats the reply
                logger.exception("cannot forget the answered intent %s", message.turn_id)
        try:
            self.on_message(message)
        except Exception:  # a callback wrapper: one bad message must not stop ingestion
            logger.exception("handling a %s message failed", message.KIND.value)

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._send_next()
            except QueueError:  # the disk: the intent stays queued, try again later
                logger.exception("the intent queue failed")
                self._stop.wait(self.settings.reconnect_seconds)

    def _send_next(self) -> None:
        if not self.connected.wait(POLL_SECONDS):
            return
        item = self.outbox.wait_for_head(POLL_SECONDS, self.settings.resend_seconds)
        if item is None or self._stop.is_set():
            return
        now = self.clock()
        if item.expired(now):
            self._expire(item, now)
            return
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if item.expires_at is not None:
            # Nor does the broker hand it on later: it drops the message at its expiry.
            props.MessageExpiryInterval = max(1, math.ceil(item.expires_at - now))
        pending = self._acks.publish(
            lambda: self.client.publish(item.topic, item.payload, 1, properties=props).mid
        )
        # paho keeps an unacknowledged QoS 1 message and resends it after a reconnect, so
        # the same message is awaited, never published twice. (One that expires meanwhile
        # is still resent; the hub refuses it.)
        while not self._stop.is_set():
            code = pending.wait(POLL_SECONDS)
            if code is None:
                continue
            if code.is_failure:
                self.outbox.dead_letter(item.seq, REFUSED, reason_code=code.value, detail=str(code))
                logger.warning(
                    "the broker refused intent %s: %s (reason code 0x%02X); "
                    "moved to the dead letters, not retried",
                    item.turn_id,
                    code,
                    code.value,
                )
            else:
                # Kept until the hub answers (see the module's docstring).
                self.outbox.mark_sent(item.seq)
                if item.sent_at is None:
                    logger.info("intent %s delivered to the broker", item.turn_id)
                else:
                    logger.info("intent %s sent again: no reply from the hub yet", item.turn_id)
            return

    def _expire(self, item: Queued, now: float) -> None:
        assert item.expires_at is not None  # item.expired(now) holds
        if item.sent_at is None:
            detail, what = "expired before it could be sent", "expired unsent"
        else:
            detail, what = "expired with no reply from the hub", "expired unanswered"
        self.outbox.dead_letter(item.seq, EXPIRED, detail=detail)
        age = "unknown" if item.queued_at is None else f"{now - item.queued_at:.1f}s"
        logger.warning(
            "intent %s %s (age %s, expired %.1fs ago); moved to the dead letters",
            item.turn_id,
            what,
            age,
            now - item.expires_at,
        )

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, rc: ReasonCode, props: object
    ) -> None:
        self._acks.received(mid, rc)

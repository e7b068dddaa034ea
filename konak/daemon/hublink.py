"""The MQTT 5 link to the hub: status with last will, intents from the outbox, replies.

paho's network thread reconnects by itself; a sender thread publishes the outbox's
oldest intent (QoS 1), waits for the broker's PUBACK and only then removes it, so
intents arrive in order and survive broker outages and daemon restarts.
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
from collections.abc import Callable
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from konak.daemon.outbox import Outbox
from konak.daemon.settings import DeviceSettings, HubSettings
from konak.protocol import SPECS, Kind, Message, ProtocolError, Status, build_topic, decode

logger = logging.getLogger(__name__)

POLL_SECONDS: Final = 0.5
MessageHandler = Callable[[Message], None]


class HubLink:
    """Owns the paho client and the outbox sender thread."""

    def __init__(
        self,
        device: DeviceSettings,
        settings: HubSettings,
        outbox: Outbox,
        on_message: MessageHandler,
        status: Callable[[], Status],
    ) -> None:
        self.device, self.settings, self.outbox = device, settings, outbox
        self.on_message = on_message
        self.status = status
        self.connected = threading.Event()
        self.rejected = 0
        self._stop = threading.Event()
        client_id = f"konak-{device.tenant}-{device.device}"
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
        self._acks: dict[int, threading.Event] = {}
        self._acks_lock = threading.Lock()
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

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: Any, rc: Any, props: object
    ) -> None:
        if rc.is_failure:
            logger.warning("broker refused the connection: %s", rc)
            return
        logger.info("connected to the broker %s:%d", self.settings.host, self.settings.port)
        self.last_error = None
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
        try:
            self.on_message(message)
        except Exception:  # a callback wrapper: one bad message must not stop ingestion
            logger.exception("handling a %s message failed", message.KIND.value)

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            if not self.connected.wait(POLL_SECONDS):
                continue
            item = self.outbox.wait_for_head(POLL_SECONDS)
            if item is None or self._stop.is_set():
                continue
            acked = threading.Event()
            with self._acks_lock:
                info = self.client.publish(item.topic, item.payload, qos=1)
                self._acks[info.mid] = acked
            # paho keeps an unacknowledged QoS 1 message and resends it after a
            # reconnect, so the same message is awaited, never published twice.
            while not self._stop.is_set():
                if acked.wait(POLL_SECONDS):
                    self.outbox.remove(item.seq)
                    logger.info("intent %s delivered", item.turn_id)
                    break

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, rc: Any, props: object
    ) -> None:
        with self._acks_lock:
            acked = self._acks.pop(mid, None)
        if acked is not None:
            acked.set()

"""A small blocking MQTT client that records what it receives, for tests and the demo."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Final, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from konak.devtools.mosquitto import Credentials
from konak.errors import KonakError

CONNECT_TIMEOUT_SECONDS: Final = 5.0


class ProbeError(KonakError):
    """The probe could not connect, subscribe or publish."""

    code = "probe_error"


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the probe received it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    message_expiry_seconds: int | None = None  # what is left of the MQTT 5 message expiry


class MqttProbe:
    """Connects with MQTT 5, subscribes on request and queues every message received."""

    def __init__(
        self,
        host: str,
        port: int,
        credentials: Credentials | None,
        client_id: str = "",
        *,
        clean_start: bool = True,
        session_expiry_seconds: int = 0,
    ) -> None:
        self.host, self.port = host, port
        self.messages: queue.Queue[Received] = queue.Queue()
        self._connected = threading.Event()
        self._connect_result: ReasonCode | None = None
        self._clean_start = clean_start
        self._session_expiry_seconds = session_expiry_seconds
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if credentials is not None:
            self.client.username_pw_set(credentials.username, credentials.password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._subacks_changed = threading.Condition()

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, rc: ReasonCode, props: object
    ) -> None:
        self._connect_result = rc
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        expiry = getattr(msg.properties, "MessageExpiryInterval", None)
        self.messages.put(
            Received(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), expiry)
        )

    def connect(self) -> Self:
        """Connect and wait for the broker's answer; raises ProbeError when refused."""
        if self._connected.is_set():
            raise ProbeError("already connected (use the probe, or `with`, not both)")
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._session_expiry_seconds
        self.client.connect(
            self.host, self.port, clean_start=self._clean_start, properties=props, keepalive=30
        )
        self.client.loop_start()
        if not self._connected.wait(CONNECT_TIMEOUT_SECONDS):
            self.close()
            raise ProbeError("no CONNACK from the broker")
        if self._connect_result is None or self._connect_result.is_failure:
            reason = str(self._connect_result)
            self.close()
            raise ProbeError(f"broker refused the connection: {reason}", code="refused")
        return self

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, codes: list[ReasonCode], p: object
    ) -> None:
        with self._subacks_changed:
            self._subacks[mid] = codes
            self._subacks_changed.notify_all()

    def subscribe(self, topic: str, qos: int = 1) -> list[ReasonCode]:
        """Subscribe and wait for the SUBACK; returns the granted reason codes."""
        # The SUBACK may arrive before subscribe() returns its mid: callbacks record every
        # SUBACK by mid and we wait for ours.
        result, mid = self.client.subscribe(topic, qos)
        if mid is None:
            raise ProbeError(f"subscribe to {topic} failed: {mqtt.error_string(result)}")
        with self._subacks_changed:
            if not self._subacks_changed.wait_for(
                lambda: mid in self._subacks, CONNECT_TIMEOUT_SECONDS
            ):
                raise ProbeError(f"no SUBACK for {topic}")
            return self._subacks.pop(mid)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish and, for QoS > 0, wait until the broker acknowledged it."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(CONNECT_TIMEOUT_SECONDS)
        if not info.is_published():
            raise ProbeError(f"publish to {topic} was not acknowledged")

    def next(self, timeout: float = 5.0) -> Received:
        """The next message received, waiting at most ``timeout`` seconds."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise ProbeError(f"no message within {timeout}s", code="timeout") from None

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()
        # paho keeps its socket (after a refusal) and a wake-up socket pair until the client
        # is garbage-collected; close them now so nothing leaks into later tests.
        self.client._reset_sockets()

    def __enter__(self) -> Self:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

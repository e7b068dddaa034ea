"""Simulated Zigbee2MQTT lights on the harness broker, for the demo, the benchmarks and
tests: konak-home reports a command done only when the device echoes its new state."""

from __future__ import annotations

import json
import threading
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from konak.devtools.mosquitto import Mosquitto

SUBSCRIBE_TIMEOUT_SECONDS: Final = 20.0


class ZigbeeLights:
    """Simulated Zigbee2MQTT devices: each ``zigbee2mqtt/<name>/set`` is answered with the
    device's new state on ``zigbee2mqtt/<name>``, as Zigbee2MQTT does; a name in ``silent``
    never answers. Reconnects and subscribes again after a broker restart."""

    def __init__(self, broker: Mosquitto, silent: tuple[str, ...] = ()) -> None:
        self.silent = silent
        self.states: dict[str, dict[str, Any]] = {}
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.subscriptions = 0
        self._changed = threading.Condition()
        self._broker = broker
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(broker.admin.username, broker.admin.password)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        client.subscribe("zigbee2mqtt/+/set", 1)

    def _on_subscribe(self, *_: object) -> None:
        with self._changed:
            self.subscriptions += 1
            self._changed.notify_all()

    def _on_message(self, client: mqtt.Client, _: object, msg: mqtt.MQTTMessage) -> None:
        name = msg.topic.split("/")[1]
        command = json.loads(msg.payload)
        with self._changed:
            self.commands.append((name, command))
            self._changed.notify_all()
        if name in self.silent:
            return
        state = self.states.setdefault(name, {"state": "OFF"})
        state.update((k, v) for k, v in command.items() if k in ("state", "brightness", "color"))
        client.publish(f"zigbee2mqtt/{name}", json.dumps(state), qos=1)

    def wait_subscriptions(self, count: int, timeout: float = SUBSCRIBE_TIMEOUT_SECONDS) -> None:
        """Block until the simulator has subscribed ``count`` times (once per connection)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.subscriptions >= count, timeout):
                raise TimeoutError(f"the simulated lights did not subscribe {count} time(s)")

    def start(self) -> ZigbeeLights:
        """Connect and return once subscribed."""
        self.client.connect(self._broker.host, self._broker.port)
        self.client.loop_start()
        self.wait_subscriptions(1)
        return self

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()

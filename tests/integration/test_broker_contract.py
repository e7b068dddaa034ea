"""The wire contract over the real broker: what one client publishes, another parses."""

from __future__ import annotations

import pytest

from konak.devtools.mosquitto import AclRule, Mosquitto
from konak.devtools.probe import ProbeError
from konak.protocol import (
    Intent,
    Kind,
    ProtocolError,
    Reply,
    Status,
    decode,
    device_acl,
    subscription,
)

pytestmark = pytest.mark.integration


def device_credentials(broker: Mosquitto, tenant: str, device: str):  # type: ignore[no-untyped-def]
    rules = [AclRule(access, topic) for access, topic in device_acl(tenant, device)]
    return broker.add_user(f"{tenant}.{device}", acl=rules)


def test_an_intent_published_by_a_device_arrives_parsed_at_the_hub(mqtt_probe, broker) -> None:  # type: ignore[no-untyped-def]
    hub = mqtt_probe()
    hub.subscribe(subscription(Kind.INTENT))
    device = mqtt_probe(device_credentials(broker, "acme", "kitchen"))
    sent = Intent(
        tenant="acme",
        device="kitchen",
        turn_id="turn-0001-abcdef",
        text="turn on the kitchen light",
        intent="HassTurnOn",
        slots={"name": "kitchen light"},
        wake_word="hey_jarvis",
        wake_score=0.93,
    )
    device.publish(sent.topic, sent.to_payload(), qos=1)

    got = hub.next()

    assert got.qos == 1
    assert decode(got.topic, got.payload) == sent


def test_a_reply_from_the_hub_reaches_only_its_device(mqtt_probe, broker) -> None:  # type: ignore[no-untyped-def]
    hub = mqtt_probe()
    kitchen = mqtt_probe(device_credentials(broker, "acme", "kitchen"))
    hall = mqtt_probe(device_credentials(broker, "acme", "hall"))
    kitchen.subscribe(subscription(Kind.REPLY, tenant="acme", device="kitchen"))
    # The hall device tries to eavesdrop on the kitchen's replies; its ACL filters them.
    hall.subscribe(subscription(Kind.REPLY, tenant="acme", device="kitchen"))
    hall.subscribe(subscription(Kind.REPLY, tenant="acme", device="hall"))
    reply = Reply(tenant="acme", device="kitchen", turn_id="turn-0001-abcdef", text="Done.")
    hub.publish(reply.topic, reply.to_payload())
    marker = Reply(tenant="acme", device="hall", turn_id="turn-0002-abcdef", text="Hall.")
    hub.publish(marker.topic, marker.to_payload())

    got = kitchen.next()
    assert decode(got.topic, got.payload) == reply
    got = hall.next()
    assert decode(got.topic, got.payload) == marker, "hall saw the kitchen's reply first"


def test_a_device_cannot_publish_as_another_device_or_tenant(mqtt_probe, broker) -> None:  # type: ignore[no-untyped-def]
    hub = mqtt_probe()
    hub.subscribe(subscription(Kind.INTENT, tenant="+"))
    intruder = mqtt_probe(device_credentials(broker, "acme", "kitchen"))
    for tenant, device in (("acme", "hall"), ("other", "kitchen")):
        forged = Intent(tenant=tenant, device=device, turn_id="turn-evil-0001", text="unlock")
        intruder.publish(forged.topic, forged.to_payload(), qos=1)
    own = Intent(tenant="acme", device="kitchen", turn_id="turn-good-0001", text="hello")
    intruder.publish(own.topic, own.to_payload(), qos=1)

    got = hub.next()

    assert decode(got.topic, got.payload) == own
    assert hub.messages.empty()


def test_a_payload_claiming_another_device_is_rejected_by_the_receiver(mqtt_probe, broker) -> None:  # type: ignore[no-untyped-def]
    hub = mqtt_probe()
    hub.subscribe(subscription(Kind.INTENT))
    device = mqtt_probe(device_credentials(broker, "acme", "kitchen"))
    lie = Intent(tenant="acme", device="hall", turn_id="turn-lie-00001", text="open")
    device.publish("konak/v1/acme/kitchen/intent", lie.to_payload(), qos=1)

    got = hub.next()

    with pytest.raises(ProtocolError) as info:
        decode(got.topic, got.payload)
    assert info.value.code == "topic_mismatch"


def test_the_last_will_marks_a_vanished_device_offline(mqtt_probe, broker) -> None:  # type: ignore[no-untyped-def]
    hub = mqtt_probe()
    hub.subscribe(subscription(Kind.STATUS))
    creds = device_credentials(broker, "acme", "kitchen")
    from konak.devtools.probe import MqttProbe

    device = MqttProbe(broker.host, broker.port, creds)
    will = Status(tenant="acme", device="kitchen", state="offline")
    device.client.will_set(will.topic, will.to_payload(), qos=1, retain=True)
    device.connect()
    online = Status(tenant="acme", device="kitchen", state="online")
    device.publish(online.topic, online.to_payload(), qos=1, retain=True)
    got = hub.next()
    assert decode(got.topic, got.payload) == online

    device.client.loop_stop()
    device.client.socket().close()  # vanish without DISCONNECT

    got = hub.next(timeout=10)
    status = decode(got.topic, got.payload)
    assert isinstance(status, Status)
    assert status.state == "offline"


def test_an_unauthenticated_client_cannot_connect(broker: Mosquitto) -> None:
    from konak.devtools.probe import MqttProbe

    with pytest.raises(ProbeError, match="refused"):
        MqttProbe(broker.host, broker.port, None).connect()


def test_queued_qos1_messages_beyond_the_default_1000_all_arrive(mqtt_probe) -> None:  # type: ignore[no-untyped-def]
    # A persistent session that is offline while 1500 QoS 1 intents are published: with
    # mosquitto's default max_queued_messages (1000) a third of them would be dropped.
    sub = mqtt_probe(client_id="hub-persistent", clean_start=False, session_expiry_seconds=300)
    sub.subscribe(subscription(Kind.INTENT), qos=1)
    sub.close()
    pub = mqtt_probe()
    for i in range(1500):
        msg = Intent(tenant="acme", device="kitchen", turn_id=f"turn-{i:08d}", text=str(i))
        pub.client.publish(msg.topic, msg.to_payload(), qos=1)
    last = Intent(tenant="acme", device="kitchen", turn_id="turn-last-0000", text="last")
    pub.publish(last.topic, last.to_payload(), qos=1)

    back = mqtt_probe(client_id="hub-persistent", clean_start=False, session_expiry_seconds=300)
    texts = []
    while True:
        got = back.next(timeout=10)
        text = decode(got.topic, got.payload).text  # type: ignore[attr-defined]
        texts.append(text)
        if text == "last":
            break
    assert texts[:-1] == [str(i) for i in range(1500)]

"""PUBACKs are matched to the publish waiting for them, whichever thread is first."""

from __future__ import annotations

import threading

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from konak.daemon.hublink import Acks

SUCCESS = ReasonCode(PacketTypes.PUBACK, "Success")
NOT_AUTHORIZED = ReasonCode(PacketTypes.PUBACK, "Not authorized")


def test_a_puback_that_arrives_before_publish_returns_its_mid_is_not_lost() -> None:
    acks = Acks()

    def send() -> int:
        # paho's network thread reads the PUBACK before publish() has returned.
        network = threading.Thread(target=acks.received, args=(7, NOT_AUTHORIZED))
        network.start()
        network.join(timeout=5)
        return 7

    pending = acks.publish(send)

    assert pending.wait(0) is NOT_AUTHORIZED


def test_a_puback_that_arrives_after_publish_returned_completes_the_wait() -> None:
    acks = Acks()
    pending = acks.publish(lambda: 3)
    assert pending.wait(0) is None

    acks.received(3, SUCCESS)

    assert pending.wait(0) is SUCCESS


def test_the_network_thread_can_ack_another_message_while_the_sender_is_inside_publish() -> None:
    """paho calls on_publish holding the lock publish() needs: had the sender held our lock
    across publish(), each thread would wait for the other for ever."""
    acks = Acks()
    paho_lock = threading.Lock()
    holding = threading.Event()
    inside_publish = threading.Event()
    network_done = threading.Event()

    def network_thread() -> None:
        with paho_lock:  # as paho holds its mutex around on_publish
            holding.set()
            inside_publish.wait(timeout=5)
            acks.received(41, SUCCESS)  # the ack of a status message
        network_done.set()

    def send() -> int:
        inside_publish.set()
        with paho_lock:  # publish() takes paho's mutex
            return 42

    results = []
    network = threading.Thread(target=network_thread, daemon=True)
    network.start()
    assert holding.wait(timeout=5)  # the network thread holds paho's lock first
    sender = threading.Thread(target=lambda: results.append(acks.publish(send)), daemon=True)
    sender.start()
    sender.join(timeout=5)
    network.join(timeout=5)

    assert not sender.is_alive()
    assert network_done.is_set()
    assert results[0].wait(0) is None  # 41 was another message's ack, not ours
    acks.received(42, SUCCESS)
    assert results[0].wait(0) is SUCCESS


def test_an_ack_of_another_message_outside_a_publish_is_never_mistaken_for_a_later_one() -> None:
    acks = Acks()
    acks.received(5, SUCCESS)  # a status message's PUBACK, nobody waiting

    pending = acks.publish(lambda: 5)  # mids wrap round: a later intent gets mid 5

    assert pending.wait(0) is None

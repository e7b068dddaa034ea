"""The outbox sender and paho's network thread never wait for each other: intents keep flowing,
in order, while the broker acknowledges other messages at the same time."""

from __future__ import annotations

import threading
from contextlib import closing
from pathlib import Path

import pytest

from konak.daemon.hublink import HubLink
from konak.daemon.outbox import Outbox
from konak.devtools.mosquitto import Mosquitto
from konak.protocol import Intent, Kind

from .conftest import Listen
from .hublinks import hub_settings, intent, online, running_link

pytestmark = pytest.mark.integration

INTENTS = 300
WAIT_SECONDS = 30.0


def _publish_status_until(link: HubLink, stop: threading.Event) -> None:
    """Keep one QoS 1 status in flight at a time, so PUBACKs of messages other than the
    outbox's arrive all the while (before the fix this deadlocked within a few intents)."""
    status = online()
    while not stop.is_set():
        if not link.connected.wait(1.0):
            continue
        info = link.client.publish(status.topic, status.to_payload(), qos=1)
        info.wait_for_publish(5.0)


def test_intents_flow_in_order_while_the_broker_acknowledges_other_messages(
    broker: Mosquitto, listen: Listen, tmp_path: Path
) -> None:
    hub = listen(Kind.INTENT)
    path = tmp_path / "queue.sqlite3"
    turn_ids = [f"t-flow-{i:05d}" for i in range(INTENTS)]
    stop = threading.Event()
    settings = hub_settings(broker, path)
    with closing(Outbox(path)) as outbox, running_link(settings, outbox) as link:
        noise = threading.Thread(target=_publish_status_until, args=(link, stop))
        noise.start()
        try:
            for turn_id in turn_ids:
                link.queue(intent(turn_id))
            drained = outbox.wait_for(lambda: outbox.unsent_count() == 0, WAIT_SECONDS)
        finally:
            stop.set()
            noise.join(timeout=10)
        left = outbox.unsent_count()

    assert drained, f"{left} of {INTENTS} intents still queued"
    received = [Intent.from_payload(hub.next(WAIT_SECONDS).payload).turn_id for _ in turn_ids]
    assert received == turn_ids

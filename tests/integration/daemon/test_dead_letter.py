"""An intent the broker refuses becomes a dead letter, with the broker's reason code, and the
queue goes on: the refused intent is neither dropped silently nor retried for ever."""

from __future__ import annotations

import logging
from contextlib import closing
from pathlib import Path

import pytest

from konak.daemon.outbox import Outbox
from konak.devtools.mosquitto import Credentials, Mosquitto
from konak.devtools.probe import MqttProbe
from konak.protocol import Intent, Kind, Status, build_topic, subscription
from konak.provisioning.dynsec import DynsecAdmin, device_role

from .hublinks import DEVICE, TENANT, hub_settings, intent, online, running_link

pytestmark = pytest.mark.integration

WAIT_SECONDS = 20.0


def test_an_intent_refused_after_the_devices_role_changed_is_a_dead_letter_and_not_retried(
    dynsec_broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = dynsec_broker
    path = tmp_path / "queue.sqlite3"
    with (
        DynsecAdmin(
            broker.host, broker.port, broker.admin.username, broker.admin.password
        ) as admin,
        MqttProbe(broker.host, broker.port, broker.admin) as hub,
    ):
        login = admin.create_device(TENANT, DEVICE)
        hub.subscribe(subscription(Kind.INTENT))
        hub.subscribe(subscription(Kind.STATUS))
        with (
            closing(Outbox(path)) as outbox,
            caplog.at_level(logging.WARNING, "konak.daemon.hublink"),
            running_link(
                hub_settings(broker, path, Credentials(login.username, login.password)), outbox
            ) as link,
        ):
            assert Status.from_payload(hub.next(WAIT_SECONDS).payload).state == "online"
            link.queue(intent("t-allowed-001"))
            delivered = Intent.from_payload(hub.next(WAIT_SECONDS).payload)
            assert outbox.wait_for(lambda: outbox.unsent_count() == 0, WAIT_SECONDS)

            # The device's role loses the intent topic (as when an admin narrows it).
            admin.command(
                "removeRoleACL",
                rolename=device_role(TENANT, DEVICE),
                acltype="publishClientSend",
                topic=build_topic(TENANT, DEVICE, Kind.INTENT),
            )
            link.queue(intent("t-refused-001"))
            link.queue(intent("t-refused-002"))
            assert outbox.wait_for(lambda: outbox.dead_letter_count() == 2, WAIT_SECONDS)
            # Sent after the refusals on the same connection: the next message the hub sees,
            # so neither refused intent reached it.
            link.publish(online())
            after = hub.next(WAIT_SECONDS)
            dead = outbox.dead_letters()
            queued = outbox.unsent_count()

    assert delivered.turn_id == "t-allowed-001"
    assert [(d.turn_id, d.reason, d.reason_code, d.detail) for d in dead] == [
        ("t-refused-001", "refused", 0x87, "Not authorized"),
        ("t-refused-002", "refused", 0x87, "Not authorized"),
    ]
    assert queued == 0
    assert after.topic == build_topic(TENANT, DEVICE, Kind.STATUS)
    refusals = [r.getMessage() for r in caplog.records if "refused intent" in r.getMessage()]
    assert refusals == [
        "the broker refused intent t-refused-001: Not authorized (reason code 0x87); "
        "moved to the dead letters, not retried",
        "the broker refused intent t-refused-002: Not authorized (reason code 0x87); "
        "moved to the dead letters, not retried",
    ]

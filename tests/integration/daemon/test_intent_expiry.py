"""An intent past its expiry is never published: it becomes a dead letter, logged once, and
the intents queued behind it are still sent."""

from __future__ import annotations

import logging
import time
from contextlib import closing
from pathlib import Path

import pytest

from konak.daemon.outbox import Outbox
from konak.devtools.mosquitto import Mosquitto
from konak.protocol import Intent, Kind

from .conftest import Listen
from .hublinks import Clock, device_login, hub_settings, intent, restart_watched, running_link

pytestmark = pytest.mark.integration

WAIT_SECONDS = 20.0


def _expiry_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "expired unsent" in r.getMessage()]


def test_an_intent_queued_past_its_expiry_is_not_published_and_becomes_a_dead_letter(
    broker: Mosquitto, listen: Listen, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub = listen(Kind.INTENT)
    path = tmp_path / "queue.sqlite3"
    queued_clock = Clock()
    queued_clock.offset = -90.0  # queued a minute and a half ago, during an outage
    with closing(Outbox(path, clock=queued_clock)) as outbox:
        now = time.time()
        stale, fresh = intent("t-stale-0001", now - 60), intent("t-fresh-0001", now + 600)
        for queued in (stale, fresh):
            outbox.put(queued.turn_id, queued.topic, queued.to_payload(), queued.expires_at)
        with (
            caplog.at_level(logging.WARNING, "konak.daemon.hublink"),
            running_link(hub_settings(broker, path), outbox),
        ):
            # The stale intent is first in the queue, so whatever arrives first shows
            # whether it was published.
            first = Intent.from_payload(hub.next(WAIT_SECONDS).payload)
            assert outbox.wait_for(lambda: outbox.unsent_count() == 0, WAIT_SECONDS)
        dead = outbox.dead_letters()
        counts = (outbox.dead_letter_count(), outbox.expired_count())

    assert first.turn_id == "t-fresh-0001"
    assert [(d.turn_id, d.reason, d.reason_code, d.expires_at) for d in dead] == [
        ("t-stale-0001", "expired", None, stale.expires_at)
    ]
    assert counts == (1, 1)
    [warning] = _expiry_warnings(caplog)
    assert warning.startswith("intent t-stale-0001 expired unsent (age 9")  # ~90 s old
    assert "expired 60." in warning


def test_an_intent_that_expires_while_the_broker_is_down_is_not_sent_when_it_returns(
    broker: Mosquitto, listen: Listen, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    login = device_login(broker)
    broker.kill()
    path = tmp_path / "queue.sqlite3"
    clock = Clock()
    with (
        closing(Outbox(path)) as outbox,
        caplog.at_level(logging.WARNING, "konak.daemon.hublink"),
        running_link(hub_settings(broker, path, login.credentials), outbox, clock),
    ):
        now = time.time()
        short, long = intent("t-short-0001", now + 30), intent("t-long-00001", now + 3600)
        for queued in (short, long):
            outbox.put(queued.turn_id, queued.topic, queued.to_payload(), queued.expires_at)
        clock.offset = 120.0  # the outage lasts two minutes, as far as the device can tell

        # The hub's subscription is in place before the device can reconnect.
        hub = restart_watched(broker, login, lambda: listen(Kind.INTENT))
        first = Intent.from_payload(hub.next(WAIT_SECONDS).payload)
        assert outbox.wait_for(lambda: outbox.unsent_count() == 0, WAIT_SECONDS)
        dead = [(d.turn_id, d.reason) for d in outbox.dead_letters()]

    assert first.turn_id == "t-long-00001"
    assert dead == [("t-short-0001", "expired")]
    assert [w.split(" (")[0] for w in _expiry_warnings(caplog)] == [
        "intent t-short-0001 expired unsent"
    ]


def test_each_intent_carries_an_mqtt_message_expiry_and_one_never_answered_expires_as_such(
    broker: Mosquitto, listen: Listen, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub = listen(Kind.INTENT)
    path = tmp_path / "queue.sqlite3"
    clock = Clock()
    settings = hub_settings(broker, path, resend_seconds=0.2)
    with (
        closing(Outbox(path)) as outbox,
        caplog.at_level(logging.WARNING, "konak.daemon.hublink"),
        running_link(settings, outbox, clock) as link,
    ):
        link.queue(intent("t-unanswered", time.time() + 600))
        got = hub.next(WAIT_SECONDS)
        # Nobody answers (the probe is no hub): the intent stays queued and is sent again,
        # until its expiry has passed as far as the device can tell.
        assert Intent.from_payload(hub.next(WAIT_SECONDS).payload).turn_id == "t-unanswered"
        clock.offset = 900.0
        assert outbox.wait_for(lambda: len(outbox) == 0, WAIT_SECONDS)
        dead = [(d.turn_id, d.reason, d.detail) for d in outbox.dead_letters()]

    assert got.message_expiry_seconds is not None
    assert 300 < got.message_expiry_seconds <= 600  # from its expires_at, less the trip
    assert dead == [("t-unanswered", "expired", "expired with no reply from the hub")]
    [warning] = [r.getMessage() for r in caplog.records if "expired unanswered" in r.getMessage()]
    assert warning.startswith("intent t-unanswered expired unanswered (age ")

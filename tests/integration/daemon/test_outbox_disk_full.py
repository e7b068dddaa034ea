"""A full disk under the daemon's outbox, with the real broker (issue 13: disk full): the new
intent is refused, nothing queued is lost, replies still reach their turns, and the link
carries on once space is back."""

from __future__ import annotations

import queue
from contextlib import closing
from pathlib import Path

import pytest

from konak.daemon.errors import QueueError
from konak.daemon.outbox import Outbox
from konak.devtools.mosquitto import Mosquitto
from konak.protocol import Intent, Kind, Message, Reply
from tests.conftest import fill_disk

from .conftest import Listen
from .hublinks import DEVICE, TENANT, hub_settings, intent, running_link

pytestmark = pytest.mark.integration

WAIT_SECONDS = 30.0


def reply(turn_id: str) -> Reply:
    return Reply(tenant=TENANT, device=DEVICE, turn_id=turn_id, text="Done.")


@pytest.mark.expect_error_log(match="database or disk is full")
def test_a_full_disk_loses_no_queued_intent_nor_reply_and_the_link_works_once_space_returns(
    broker: Mosquitto, listen: Listen, tiny_tmpfs: Path
) -> None:
    hub = listen(Kind.INTENT)
    path = tiny_tmpfs / "queue.sqlite3"
    settings = hub_settings(broker, path)
    received: queue.Queue[Message] = queue.Queue()

    def sent() -> str:
        return Intent.from_payload(hub.next(WAIT_SECONDS).payload).turn_id

    def answer(turn_id: str) -> str:
        hub.publish(reply(turn_id).topic, reply(turn_id).to_payload())
        got = received.get(timeout=WAIT_SECONDS)
        return got.turn_id if isinstance(got, Reply) else repr(got)

    with (
        closing(Outbox(path)) as outbox,
        running_link(settings, outbox, on_message=received.put) as link,
    ):
        link.queue(intent("t-disk-00001"))
        link.queue(intent("t-disk-00002"))
        first_sent = [sent(), sent()]
        assert outbox.wait_for(lambda: outbox.unsent_count() == 0, WAIT_SECONDS)
        filler = fill_disk(tiny_tmpfs)

        with pytest.raises(QueueError, match="cannot queue intent t-disk-full: database or disk"):
            link.queue(intent("t-disk-full"))
        answered_while_full = answer("t-disk-00001")  # reaches the turn; stays queued
        queued_while_full = len(outbox)

        filler.unlink()
        link.queue(intent("t-disk-after"))
        after_sent = sent()
        answers = [answer(t) for t in ("t-disk-00001", "t-disk-00002", "t-disk-after")]
        left = len(outbox)
        connected = link.connected.is_set()

    assert first_sent == ["t-disk-00001", "t-disk-00002"]
    assert answered_while_full == "t-disk-00001"
    assert queued_while_full == 2
    assert after_sent == "t-disk-after"
    assert answers == ["t-disk-00001", "t-disk-00002", "t-disk-after"]
    assert left == 0
    assert connected

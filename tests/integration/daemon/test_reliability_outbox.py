"""Nothing lost, nothing late (issue 13, rows E and F), with the real broker, the real hub
process (`konak hub run` with konak-home) and the daemon's own outbox and hub link.

F: the broker acknowledges intents it then drops (the hub's session is gone), and the hub
comes back later: the device keeps each intent until the hub's reply and sends it again,
so every one is executed, once. E: once the device has told the person a turn failed
("The hub is not answering."), that intent is withdrawn and never runs later.
"""

from __future__ import annotations

import contextlib
from contextlib import closing
from pathlib import Path

import pytest

from konak.daemon.outbox import ABANDONED, Outbox
from konak.devtools.localhub import local_hub
from konak.devtools.mosquitto import Mosquitto
from konak.devtools.probe import MqttProbe, ProbeError
from konak.protocol import Kind, Reply, build_topic

from .conftest import Listen, RunningDaemon, Wav, command
from .hublinks import (
    DEVICE,
    TENANT,
    device_login,
    hub_settings,
    intent,
    restart_watched,
    running_link,
)

pytestmark = pytest.mark.integration

WAIT_SECONDS = 60.0
LIGHTS = [("kitchen light", "kitchen")]
EXECUTED = "zigbee2mqtt/+/set"  # what konak-home publishes to switch a light


def _answers(replies: MqttProbe, count: int) -> dict[str, Reply]:
    """The first reply (not a ``repeat``) to each of ``count`` turns."""
    answered: dict[str, Reply] = {}
    while len(answered) < count:
        got = replies.next(WAIT_SECONDS)
        reply = Reply.from_payload(got.payload, topic=got.topic)
        if not reply.repeat:
            answered.setdefault(reply.turn_id, reply)
    return answered


def _executions(executed: MqttProbe) -> int:
    """How many switch commands konak-home sent, once no more come within 3 s."""
    count = 0
    with contextlib.suppress(ProbeError):
        while True:
            executed.next(3.0)
            count += 1
    return count


@pytest.mark.timeout(300)
def test_intents_the_broker_acknowledged_and_lost_reach_a_hub_that_returns_later_once_each(
    broker: Mosquitto, listen: Listen, tmp_path: Path
) -> None:
    login = device_login(broker)
    broker.kill()
    path = tmp_path / "queue.sqlite3"
    turn_ids = [f"t-lost-{i:05d}" for i in range(4)]
    settings = hub_settings(broker, path, login.credentials, resend_seconds=1.0)
    with closing(Outbox(path)) as outbox, running_link(settings, outbox) as link:
        for turn_id in turn_ids:
            link.queue(intent(turn_id, expires_at=None))
        # The broker returns without the hub (it lost the hub's session with everything
        # else) and without the device's login until a probe watches the intent topic.
        watcher = restart_watched(broker, login, lambda: listen(Kind.INTENT))
        sent = [watcher.next(WAIT_SECONDS).topic for _ in turn_ids]
        # The broker acknowledged all four and handed them to nobody: no hub is subscribed.

        executed = listen(EXECUTED)
        replies = listen(build_topic(TENANT, DEVICE, Kind.REPLY))
        with local_hub(tmp_path, broker, TENANT, LIGHTS):
            answered = _answers(replies, len(turn_ids))
            assert outbox.wait_for(lambda: len(outbox) == 0, WAIT_SECONDS)
            runs = _executions(executed)
        dead = outbox.dead_letters()

    assert sent == [build_topic(TENANT, DEVICE, Kind.INTENT)] * len(turn_ids)
    assert sorted(answered) == turn_ids
    assert {r.outcome for r in answered.values()} == {"ok"}
    assert runs == len(turn_ids)  # each turn executed, none twice despite the resends
    assert dead == []


@pytest.mark.timeout(300)
def test_a_turn_the_person_was_told_failed_is_withdrawn_and_never_runs_when_the_hub_returns(
    broker: Mosquitto,
    listen: Listen,
    run_daemon: RunningDaemon,
    wav: Wav,
    tmp_path: Path,
) -> None:
    login = device_login(broker)
    broker.kill()
    daemon, log = run_daemon(
        source=wav(*command("turn on the kitchen light.", tail=2.5)),
        # Told "The hub is not answering." after 2 s; the intent itself would still be
        # valid for ten minutes, so only the withdrawal keeps it from running.
        hub={
            **login.hub_keys(),
            "reply_timeout_seconds": 2.0,
            "intent_expiry_seconds": 600.0,
            "resend_seconds": 1.0,
        },
    )
    failed = log.wait_for(lambda e: e.type == "error" and e.data["code"] == "hub_timeout")
    log.wait_ends(1)
    assert daemon.outbox is not None
    dead = [(d.turn_id, d.reason) for d in daemon.outbox.dead_letters()]
    queued = len(daemon.outbox)

    broker.remove_user(login.credentials.username)
    broker.start()
    watcher = listen(Kind.INTENT)
    executed = listen(EXECUTED)
    with local_hub(tmp_path, broker, TENANT, LIGHTS):
        broker.add_user(login.credentials.username, login.credentials.password, acl=login.acl)
        assert daemon.hub is not None
        assert daemon.hub.connected.wait(WAIT_SECONDS)
        with pytest.raises(ProbeError):
            watcher.next(5.0)  # several resend periods after the device reconnected
        runs = _executions(executed)

    assert dead == [(failed.turn_id, ABANDONED)]
    assert queued == 0
    assert runs == 0

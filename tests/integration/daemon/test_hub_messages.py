"""What the hub sends: announcements, replies (or none), configuration, garbage."""

from __future__ import annotations

import pytest

from konak.protocol import Cmd, Config, Intent, Kind, Reply, Status, build_topic, subscription
from tests.conftest import ProbeFactory
from tests.daemon.fakes import FedSource

from .conftest import Listen, RunningDaemon, Speech, Wav, command

pytestmark = pytest.mark.integration


def test_an_announcement_from_the_hub_is_spoken_and_garbage_before_it_is_ignored(
    listen: Listen, run_daemon: RunningDaemon
) -> None:
    hub = listen(Kind.STATUS)
    daemon, log = run_daemon()
    hub.next(timeout=30)  # online
    cmd_topic = build_topic("acme", "kitchen-pi", Kind.CMD)
    hub.publish(cmd_topic, b"{not json")
    hub.publish(cmd_topic, b'{"v": 9, "type": "cmd"}')
    announce = Cmd(
        tenant="acme", device="kitchen-pi", command_id="c-0123456789", action="announce",
        text="Dinner is ready.",
    )  # fmt: skip
    hub.publish(announce.topic, announce.to_payload())
    spoken = log.wait_for(lambda e: e.type == "tts-end")
    assert spoken.data["text"] == "Dinner is ready."
    assert daemon.hub.rejected == 2


def test_a_turn_the_hub_does_not_answer_ends_with_a_spoken_notice(
    listen: Listen, run_daemon: RunningDaemon, wav: Wav
) -> None:
    hub = listen(Kind.INTENT)
    source = wav(*command("turn on the kitchen light."))
    _daemon, log = run_daemon(source=source, hub={"reply_timeout_seconds": 1.0})
    hub.next(timeout=60)
    end = log.wait_for(lambda e: e.type == "run-end")
    turn = [e for e in log.events if e.turn_id == end.turn_id]
    assert [e.type for e in turn][-4:] == ["error", "tts-start", "tts-end", "run-end"]
    assert turn[-4].data == {"code": "hub_timeout"}
    assert turn[-2].data["text"] == "The hub is not answering."


def test_sentences_and_slot_lists_from_the_hubs_config_are_understood_and_reported_back(
    mqtt_probe: ProbeFactory, run_daemon: RunningDaemon
) -> None:
    hub = mqtt_probe()
    hub.subscribe(subscription(Kind.STATUS))
    config = Config(
        tenant="acme", device="kitchen-pi", revision=7,
        sentences={"PlayRadio": ["play [the] radio [in the {area}]"]},
        slot_lists={"area": ["garden"], "name": ["porch light"]},
    )  # fmt: skip
    hub.publish(config.topic, config.to_payload(), retain=True)
    daemon, log = run_daemon()
    applied = log.wait_for(lambda e: e.type == "config-applied")
    assert applied.data == {"revision": 7}
    radio = daemon.engines.intents.recognize("play the radio in the garden")
    assert radio is not None
    assert (radio.name, radio.slots) == ("PlayRadio", {"area": "garden"})
    porch = daemon.engines.intents.recognize("turn on the porch light")
    assert porch is not None
    assert porch.slots == {"name": "porch light"}
    revisions = []  # the status sent on connecting, then the one after applying
    while 7 not in revisions:
        revisions.append(Status.from_payload(hub.next(timeout=30).payload).config_revision)
    assert revisions[0] is None


def test_a_reply_asking_to_continue_listens_again_without_the_wake_word(
    listen: Listen, run_daemon: RunningDaemon, speech: Speech
) -> None:
    hub = listen(Kind.INTENT)
    mic = FedSource()
    _daemon, log = run_daemon(source=mic)
    mic.feed(speech(*command("turn on the kitchen light.")))
    first = Intent.from_payload(hub.next(timeout=60).payload)
    reply = Reply(
        tenant="acme", device="kitchen-pi", turn_id=first.turn_id, text="Which one?",
        continue_conversation=True,
    )  # fmt: skip
    hub.publish(reply.topic, reply.to_payload())
    log.wait_for(lambda e: e.type == "tts-end" and e.turn_id == first.turn_id)
    mic.feed(speech(0.3))  # the loop notices that playback ended
    mic.feed(speech(0.5, "turn off the bedroom lamp.", 1.5))
    second = Intent.from_payload(hub.next(timeout=60).payload)
    assert second.continued
    assert second.wake_word is None
    assert second.intent == "HassTurnOff"


def test_the_device_reports_status_and_telemetry_and_goes_offline_when_stopped(
    listen: Listen, run_daemon: RunningDaemon
) -> None:
    from konak.protocol import Status, Telemetry

    hub = listen(Kind.STATUS, Kind.TELEMETRY)
    daemon, _log = run_daemon(hub={"telemetry_interval_seconds": 0.2})
    first = hub.next(timeout=30)
    status = Status.from_payload(first.payload, topic=first.topic)
    assert status.state == "online"
    assert status.area == "kitchen"
    assert {"konak", "onnxruntime"} <= set(status.versions)
    assert "timers" in status.capabilities
    msg = hub.next(timeout=30)
    telemetry = Telemetry.from_payload(msg.payload, topic=msg.topic)
    assert telemetry.rss_bytes > 0
    assert set(telemetry.model_load_seconds) == {"wake", "vad", "intent", "stt", "tts"}
    assert telemetry.queue_depth == 0
    daemon.stop()
    assert daemon.stopped.wait(30)
    while (msg := hub.next(timeout=10)).topic.endswith("/telemetry"):
        pass
    assert Status.from_payload(msg.payload).state == "offline"

"""What the hub sends: announcements, replies (or none), configuration, garbage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from konak.daemon.settings import parse
from konak.devtools.mosquitto import Mosquitto
from konak.protocol import Cmd, Config, Intent, Kind, Reply, Status, build_topic, subscription
from tests.conftest import ProbeFactory
from tests.daemon.fakes import FedSource

from .conftest import RunningDaemon, daemon_config

pytestmark = pytest.mark.integration


def _start(broker, tmp_path, models_dir, run_daemon, **sections: Any):  # type: ignore[no-untyped-def]
    raw = daemon_config(broker, tmp_path, models_dir, **sections)
    return run_daemon(parse(raw, base_dir=tmp_path, default_models_dir=models_dir))


def test_an_announcement_from_the_hub_is_spoken_and_garbage_before_it_is_ignored(
    broker: Mosquitto,
    mqtt_probe: ProbeFactory,
    run_daemon: RunningDaemon,
    tmp_path: Path,
    models_dir: Path,
) -> None:
    hub = mqtt_probe()
    hub.subscribe(subscription(Kind.STATUS))
    daemon, log = _start(broker, tmp_path, models_dir, run_daemon)
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
    broker: Mosquitto,
    mqtt_probe: ProbeFactory,
    run_daemon: RunningDaemon,
    wav,
    tmp_path: Path,
    models_dir: Path,
) -> None:
    hub = mqtt_probe()
    hub.subscribe(subscription(Kind.INTENT))
    source = wav(1.0, "Hey Jarvis,", 0.3, "turn on the kitchen light.", 1.5)
    _daemon, log = _start(
        broker, tmp_path, models_dir, run_daemon,
        audio={"source": "file", "source_path": str(source)},
        hub={"reply_timeout_seconds": 1.0},
    )  # fmt: skip
    hub.next(timeout=60)
    end = log.wait_for(lambda e: e.type == "run-end")
    turn = [e for e in log.events if e.turn_id == end.turn_id]
    assert [e.type for e in turn][-4:] == ["error", "tts-start", "tts-end", "run-end"]
    assert turn[-4].data == {"code": "hub_timeout"}
    assert turn[-2].data["text"] == "The hub is not answering."


def test_sentences_and_slot_lists_from_the_hubs_config_are_understood_and_reported_back(
    broker: Mosquitto,
    mqtt_probe: ProbeFactory,
    run_daemon: RunningDaemon,
    tmp_path: Path,
    models_dir: Path,
) -> None:
    hub = mqtt_probe()
    hub.subscribe(subscription(Kind.STATUS))
    config = Config(
        tenant="acme", device="kitchen-pi", revision=7,
        sentences={"PlayRadio": ["play [the] radio [in the {area}]"]},
        slot_lists={"area": ["garden"], "name": ["porch light"]},
    )  # fmt: skip
    hub.publish(config.topic, config.to_payload(), retain=True)
    daemon, log = _start(broker, tmp_path, models_dir, run_daemon)
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
    broker: Mosquitto,
    mqtt_probe: ProbeFactory,
    run_daemon: RunningDaemon,
    speech,
    tmp_path: Path,
    models_dir: Path,
) -> None:
    hub = mqtt_probe()
    hub.subscribe(subscription(Kind.INTENT))
    mic = FedSource()
    raw = daemon_config(broker, tmp_path, models_dir)
    _daemon, log = run_daemon(parse(raw, base_dir=tmp_path, default_models_dir=models_dir), mic)
    mic.feed(speech(1.0, "Hey Jarvis,", 0.3, "turn on the kitchen light.", 1.5))
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
    broker: Mosquitto,
    mqtt_probe: ProbeFactory,
    run_daemon: RunningDaemon,
    tmp_path: Path,
    models_dir: Path,
) -> None:
    from konak.protocol import Status, Telemetry

    hub = mqtt_probe()
    hub.subscribe(subscription(Kind.STATUS))
    hub.subscribe(subscription(Kind.TELEMETRY))
    daemon, _log = _start(
        broker, tmp_path, models_dir, run_daemon, hub={"telemetry_interval_seconds": 0.2}
    )
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

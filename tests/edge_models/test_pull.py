from __future__ import annotations

import errno
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from konak.edge_models import fetch
from konak.edge_models.errors import (
    CHECKSUM_MISMATCH,
    DISK_FULL,
    LICENSE_NOT_ACCEPTED,
    SIZE_MISMATCH,
    SOURCE_UNREACHABLE,
    ModelError,
)
from konak.edge_models.pull import Puller
from konak.edge_models.store import ModelStore

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
NEW_PAYLOAD = b"v2" + PAYLOAD[2:]


def _url_model(tools: Any, server: Any, files: dict[str, bytes], **kw: Any) -> dict[str, Any]:
    for name, body in files.items():
        server.files[name] = body
    return tools.model_entry(files, [{"kind": "url", "url": server.url("{path}")}], **kw)


def test_pull_installs_and_a_second_pull_does_no_network_work(
    store: ModelStore, file_server: Any, tools: Any
) -> None:
    manifest = tools.manifest_of({"m": _url_model(tools, file_server, {"m.onnx": PAYLOAD})})
    first = Puller(store, manifest).pull(["m"])
    assert first.ok
    assert first.results[0].status == "installed"
    assert store.path("m").read_bytes() == PAYLOAD
    asked = len(file_server.requests)
    second = Puller(store, manifest).pull(["m"])
    assert second.results[0].status == "up-to-date"
    assert len(file_server.requests) == asked == 1


def test_an_interrupted_download_resumes_with_a_range_request(
    store: ModelStore, file_server: Any, tools: Any
) -> None:
    manifest = tools.manifest_of({"m": _url_model(tools, file_server, {"m.onnx": PAYLOAD})})
    file_server.cut_after["m.onnx"] = 40_000
    first = Puller(store, manifest).pull(["m"])
    assert first.failures[0].error.code == SOURCE_UNREACHABLE
    assert "resumes" in first.failures[0].error.message
    assert store.partial_path(tools.sha(PAYLOAD)).stat().st_size == 40_000
    second = Puller(store, manifest).pull(["m"])
    assert second.ok
    assert file_server.requests[-1] == ("m.onnx", "bytes=40000-")
    assert store.path("m").read_bytes() == PAYLOAD


def test_a_server_that_ignores_range_makes_the_download_start_over(
    store: ModelStore, file_server: Any, tools: Any
) -> None:
    manifest = tools.manifest_of({"m": _url_model(tools, file_server, {"m.onnx": PAYLOAD})})
    file_server.ranges = False
    file_server.cut_after["m.onnx"] = 10_000
    assert not Puller(store, manifest).pull(["m"]).ok
    assert Puller(store, manifest).pull(["m"]).ok
    assert store.path("m").read_bytes() == PAYLOAD


def test_a_wrong_sha256_is_refused_and_the_previous_version_stays(
    store: ModelStore, file_server: Any, tools: Any
) -> None:
    v1 = tools.manifest_of({"m": _url_model(tools, file_server, {"m.onnx": PAYLOAD})})
    assert Puller(store, v1).pull(["m"]).ok
    old_path = store.path("m")
    v2 = tools.manifest_of({"m": _url_model(tools, file_server, {"m.onnx": NEW_PAYLOAD})})
    file_server.files["m.onnx"] = b"XX" + PAYLOAD[2:]  # same size, wrong content
    report = Puller(store, v2).pull(["m"])
    error = report.failures[0].error
    assert error.code == CHECKSUM_MISMATCH
    assert error.message.startswith("m:")
    assert "unchanged" in error.message
    assert store.path("m") == old_path
    assert old_path.read_bytes() == PAYLOAD


def test_a_truncated_file_is_refused_as_a_size_mismatch(
    store: ModelStore, file_server: Any, tools: Any
) -> None:
    manifest = tools.manifest_of({"m": _url_model(tools, file_server, {"m.onnx": PAYLOAD})})
    file_server.files["m.onnx"] = PAYLOAD[:5000]
    report = Puller(store, manifest).pull(["m"])
    assert report.failures[0].error.code == SIZE_MISMATCH
    assert "truncated" in report.failures[0].error.message
    assert store.record("m") is None


def test_a_good_update_keeps_the_previous_version_for_rollback(
    store: ModelStore, file_server: Any, tools: Any
) -> None:
    v1 = tools.manifest_of({"m": _url_model(tools, file_server, {"m.onnx": PAYLOAD})})
    assert Puller(store, v1).pull(["m"]).ok
    v2 = tools.manifest_of({"m": _url_model(tools, file_server, {"m.onnx": NEW_PAYLOAD})})
    assert Puller(store, v2).pull(["m"]).ok
    assert store.path("m").read_bytes() == NEW_PAYLOAD
    previous = store.record("m", "previous")
    assert previous is not None
    assert previous.files[0].sha256 == tools.sha(PAYLOAD)
    store.rollback("m")
    assert store.path("m").read_bytes() == PAYLOAD


def test_an_unreachable_source_falls_back_to_the_next_source(
    store: ModelStore, file_server: Any, tools: Any
) -> None:
    entry = _url_model(tools, file_server, {"m.onnx": PAYLOAD})
    entry["sources"].insert(0, {"kind": "url", "url": tools.closed_port_url() + "/{path}"})
    report = Puller(store, tools.manifest_of({"m": entry})).pull(["m"])
    assert report.ok
    assert report.results[0].source == file_server.url("{path}")


def test_all_sources_failing_names_the_model_and_each_reason(store: ModelStore, tools: Any) -> None:
    entry = tools.model_entry(
        {"m.onnx": PAYLOAD},
        [
            {"kind": "url", "url": tools.closed_port_url() + "/{path}"},
            {"kind": "pypi", "package": "nope", "version": "1", "prefix": ""},
        ],
    )
    from konak.edge_models.errors import SourceError
    from konak.edge_models.sources import RegistryClients

    def offline(command: Any, cwd: Path) -> None:
        raise SourceError("pip: no route to the index", code=SOURCE_UNREACHABLE)

    puller = Puller(store, tools.manifest_of({"m": entry}), clients=RegistryClients(offline))
    error = puller.pull(["m"]).failures[0].error
    assert error.code == SOURCE_UNREACHABLE
    assert error.message.startswith("m: no source worked")
    assert "cannot connect" in error.message
    assert "no route to the index" in error.message


def test_an_upstream_only_model_in_a_set_is_skipped_with_a_clear_message(
    store: ModelStore, tools: Any
) -> None:
    entry = tools.model_entry(
        {},
        [
            {
                "kind": "url",
                "url": tools.closed_port_url() + "/m.zip",
                "archive": "zip",
                "sha256": "a" * 64,
                "size": 10,
            }
        ],
    )
    manifest = tools.manifest_of({"m": entry}, sets={"s": ["m"]})
    skipped = Puller(store, manifest).pull(["s"])
    assert skipped.ok
    assert skipped.results[0].status == "skipped"
    assert "upstream only" in skipped.results[0].detail
    explicit = Puller(store, manifest).pull(["m"])
    assert explicit.failures[0].error.code == SOURCE_UNREACHABLE


def test_a_non_commercial_license_is_refused_without_explicit_acceptance(
    store: ModelStore, file_server: Any, tools: Any
) -> None:
    entry = _url_model(
        tools, file_server, {"w.onnx": PAYLOAD}, license_id="CC-BY-NC-SA-4.0", commercial=False
    )
    manifest = tools.manifest_of({"w": entry})
    with pytest.raises(ModelError) as caught:
        Puller(store, manifest).pull(["w"])
    assert caught.value.code == LICENSE_NOT_ACCEPTED
    assert "CC-BY-NC-SA-4.0" in caught.value.message
    assert "w:" in caught.value.message
    assert file_server.requests == []
    accepted = Puller(store, manifest, accepted_licenses=frozenset({"CC-BY-NC-SA-4.0"}))
    assert accepted.pull(["w"]).ok


def test_an_archive_pinned_model_records_the_hash_of_every_file_it_holds(
    store: ModelStore, file_server: Any, tools: Any
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("vosk-x/am/final.mdl", PAYLOAD)
        zf.writestr("vosk-x/conf/model.conf", b"--x=1\n")
        zf.writestr("other/ignored", b"no")
    archive = buffer.getvalue()
    file_server.files["x.zip"] = archive
    entry = tools.model_entry(
        {},
        [
            {
                "kind": "url",
                "url": file_server.url("x.zip"),
                "archive": "zip",
                "prefix": "vosk-x/",
                "sha256": tools.sha(archive),
                "size": len(archive),
            }
        ],
    )
    entry["entry"] = "."
    assert Puller(store, tools.manifest_of({"v": entry})).pull(["v"]).ok
    record = store.record("v")
    assert record is not None
    assert [f.path for f in record.files] == ["am/final.mdl", "conf/model.conf"]
    assert (store.path("v") / "am" / "final.mdl").read_bytes() == PAYLOAD
    assert store.verify() == []


def test_a_full_disk_at_the_write_seam_fails_cleanly_and_keeps_the_old_version(
    store: ModelStore, file_server: Any, tools: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = tools.manifest_of({"m": _url_model(tools, file_server, {"m.onnx": PAYLOAD})})
    assert Puller(store, v1).pull(["m"]).ok
    v2 = tools.manifest_of({"m": _url_model(tools, file_server, {"m.onnx": NEW_PAYLOAD})})

    def full(out: Any, chunk: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "partial")

    monkeypatch.setattr(fetch, "write_chunk", full)
    error = Puller(store, v2).pull(["m"]).failures[0].error
    assert error.code == DISK_FULL
    assert error.message.startswith("m: disk full")
    assert store.path("m").read_bytes() == PAYLOAD


def test_a_full_disk_on_a_real_small_filesystem_keeps_the_old_version(
    tiny_tmpfs: Path, file_server: Any, tools: Any
) -> None:
    store = ModelStore(tiny_tmpfs / "models")
    v1 = tools.manifest_of({"m": _url_model(tools, file_server, {"m.onnx": PAYLOAD})})
    assert Puller(store, v1).pull(["m"]).ok
    big = bytes(300_000)
    v2 = tools.manifest_of({"m": _url_model(tools, file_server, {"m.onnx": big})})
    error = Puller(store, v2).pull(["m"]).failures[0].error
    assert error.code == DISK_FULL
    assert store.path("m").read_bytes() == PAYLOAD

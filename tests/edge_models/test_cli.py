from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from konak.edge_models import cli
from konak.edge_models.overlay import render
from tests.conftest import KonakMain, Ran, one_error_line

BODY = b"onnx-bytes" * 3000


@pytest.fixture
def manifest_file(tmp_path: Path, file_server: Any, tools: Any) -> Path:
    file_server.files["w.onnx"] = BODY
    manifest = tools.manifest_of(
        {
            "w": tools.model_entry(
                {"w.onnx": BODY},
                [{"kind": "url", "url": file_server.url("{path}")}],
                license_id="CC-BY-NC-SA-4.0",
                commercial=False,
                role="wake-word",
            )
        },
        sets={"tiny": ["w"]},
    )
    path = tmp_path / "manifest.toml"
    path.write_text(render(manifest.models, {}) + '\n[sets.tiny]\nmodels = ["w"]\n')
    return path


@pytest.fixture
def models(konak_main: KonakMain) -> KonakMain:
    """``konak models ARGV`` through its stand-alone entry, in this process."""

    def run(*argv: str) -> Ran:
        return konak_main(*argv, main=cli.main)

    return run


def test_the_cli_pulls_lists_prints_the_path_verifies_and_removes(
    tmp_path: Path, manifest_file: Path, models: KonakMain
) -> None:
    common = ["--models-dir", str(tmp_path / "m"), "--manifest", str(manifest_file)]
    pulled = models("pull", "tiny", *common, "--accept-license", "CC-BY-NC-SA-4.0")
    assert pulled.returncode == 0
    assert "w: installed" in pulled.stdout
    listed = models("list", "--json", *common)
    assert json.loads(listed.stdout)["models"][0]["id"] == "w"
    path = models("path", "w", *common)
    assert Path(path.stdout.strip()).read_bytes() == BODY
    verified = models("verify", *common)
    assert verified.returncode == 0
    assert "all files match" in verified.stdout
    removed = models("remove", "w", *common)
    assert removed.returncode == 0
    assert "w: removed" in removed.stdout
    assert one_error_line(models("path", "w", *common)).endswith("[not_installed]")


def test_the_cli_refuses_a_non_commercial_license_naming_it(
    tmp_path: Path, manifest_file: Path, models: KonakMain
) -> None:
    common = ["--models-dir", str(tmp_path / "m"), "--manifest", str(manifest_file)]
    line = one_error_line(models("pull", "tiny", *common))
    assert "CC-BY-NC-SA-4.0" in line
    assert line.endswith("[license_not_accepted]")


def test_the_cli_reports_corruption_with_a_non_zero_exit(
    tmp_path: Path, manifest_file: Path, models: KonakMain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KONAK_ACCEPT_LICENSES", "CC-BY-NC-SA-4.0")
    common = ["--models-dir", str(tmp_path / "m"), "--manifest", str(manifest_file)]
    assert models("pull", "w", *common).returncode == 0
    Path(models("path", "w", *common).stdout.strip()).write_bytes(b"garbage")
    verified = models("verify", *common)
    assert "w: w.onnx: size 7" in verified.stdout
    assert one_error_line(verified).endswith("[corrupt]")


def test_the_cli_names_an_unknown_model(tmp_path: Path, models: KonakMain) -> None:
    line = one_error_line(models("pull", "hey-jarvis", "--models-dir", str(tmp_path)))
    assert "hey-jarvis: unknown model" in line
    assert line.endswith("[unknown_model]")


def test_register_hooks_every_action_into_a_parent_parser() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    cli.register(parser)
    for action in ("pull", "list", "verify", "remove", "path", "quantize", "bench", "rollback"):
        argv = [action, *{"pull": [], "list": [], "verify": []}.get(action, ["x"])]
        assert callable(parser.parse_args(argv).handler)

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from konak.edge_models import cli
from konak.edge_models.overlay import render

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


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_pulls_lists_prints_the_path_verifies_and_removes(
    tmp_path: Path, manifest_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--models-dir", str(tmp_path / "m"), "--manifest", str(manifest_file)]
    code, out, _ = _run(capsys, "pull", "tiny", *common, "--accept-license", "CC-BY-NC-SA-4.0")
    assert code == 0
    assert "w: installed" in out
    code, out, _ = _run(capsys, "list", "--json", *common)
    assert json.loads(out)["models"][0]["id"] == "w"
    code, out, _ = _run(capsys, "path", "w", *common)
    assert Path(out.strip()).read_bytes() == BODY
    code, out, _ = _run(capsys, "verify", *common)
    assert code == 0
    assert "all files match" in out
    code, out, _ = _run(capsys, "remove", "w", *common)
    assert code == 0
    assert "w: removed" in out
    code, _, err = _run(capsys, "path", "w", *common)
    assert code == 1
    assert "[not_installed]" in err


def test_the_cli_refuses_a_non_commercial_license_naming_it(
    tmp_path: Path, manifest_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        capsys,
        "pull",
        "tiny",
        "--models-dir",
        str(tmp_path / "m"),
        "--manifest",
        str(manifest_file),
    )
    assert code == 1
    assert "CC-BY-NC-SA-4.0" in err
    assert "[license_not_accepted]" in err


def test_the_cli_reports_corruption_with_a_non_zero_exit(
    tmp_path: Path,
    manifest_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KONAK_ACCEPT_LICENSES", "CC-BY-NC-SA-4.0")
    common = ["--models-dir", str(tmp_path / "m"), "--manifest", str(manifest_file)]
    assert _run(capsys, "pull", "w", *common)[0] == 0
    _, out, _ = _run(capsys, "path", "w", *common)
    Path(out.strip()).write_bytes(b"garbage")
    code, out, err = _run(capsys, "verify", *common)
    assert code == 1
    assert "w: w.onnx: size 7" in out
    assert "[corrupt]" in err


def test_the_cli_names_an_unknown_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "pull", "hey-jarvis", "--models-dir", str(tmp_path))
    assert code == 1
    assert "hey-jarvis: unknown model" in err
    assert "[unknown_model]" in err


def test_register_hooks_every_action_into_a_parent_parser() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    cli.register(parser)
    for action in ("pull", "list", "verify", "remove", "path", "quantize", "bench", "rollback"):
        argv = [action, *{"pull": [], "list": [], "verify": []}.get(action, ["x"])]
        assert callable(parser.parse_args(argv).handler)

"""Issue 12 row 14: a model id is checked before any path is built from it, so
``konak models remove ..`` cannot empty the model store (or anything outside it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from konak import cli as konak_cli
from konak.edge_models.overlay import render

from .test_cli import BODY, manifest_file  # noqa: F401 (a fixture used below)


def _konak(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = konak_cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# Never a real system path: run against a store without the check (as when proving the
# test fails before the fix), an absolute id is deleted as it stands. "{victim}" becomes an
# absolute path inside the test's own temporary directory.
@pytest.mark.parametrize(
    "hostile",
    ["..", ".", "../..", "w/..", "{victim}", "models/../..", ".hidden", "W", "w\n", "a" * 129],
)
def test_konak_models_remove_refuses_a_path_for_an_id_and_keeps_every_file(
    tmp_path: Path,
    manifest_file: Path,  # noqa: F811 (the fixture)
    capsys: pytest.CaptureFixture[str],
    hostile: str,
) -> None:
    models = tmp_path / "m"
    common = ["--models-dir", str(models), "--manifest", str(manifest_file)]
    code, _, _ = _konak(
        capsys, "models", "pull", "tiny", *common, "--accept-license", "CC-BY-NC-SA-4.0"
    )
    assert code == 0
    outside = tmp_path / "outside.txt"
    outside.write_text("not the store's")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("not the store's")
    before = _files(tmp_path)
    hostile = hostile.replace("{victim}", str(victim))
    assert hostile.startswith(str(tmp_path)) or not hostile.startswith("/")

    code, out, err = _konak(capsys, "models", "remove", "w", hostile, *common)

    assert code == 1
    assert "w: removed" not in out  # checked before anything is removed
    assert err.count("\n") == 1
    assert err.startswith("konak models: ")
    assert err.rstrip().endswith("[invalid_model_id]")
    assert "Traceback" not in err
    assert _files(tmp_path) == before
    code, out, _ = _konak(capsys, "models", "path", "w", *common)
    assert code == 0
    assert Path(out.strip()).read_bytes() == BODY


def test_path_and_rollback_refuse_an_id_that_names_a_directory_outside_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(render({}, {}))
    common = ["--models-dir", str(tmp_path / "m"), "--manifest", str(manifest)]
    for action in ("path", "rollback"):
        code, _, err = _konak(capsys, "models", action, "../victim", *common)
        assert (code, err.count("\n")) == (1, 1)
        assert "[invalid_model_id]" in err

"""Issue 12 row 14: a model id is checked before any path is built from it, so
``konak models remove ..`` cannot empty the model store (or anything outside it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from konak.edge_models.overlay import render
from tests.conftest import KonakMain, one_error_line

from .test_cli import BODY, manifest_file  # noqa: F401 (a fixture used below)


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
    konak_main: KonakMain,
    hostile: str,
) -> None:
    models = tmp_path / "m"
    common = ["--models-dir", str(models), "--manifest", str(manifest_file)]
    pulled = konak_main("models", "pull", "tiny", *common, "--accept-license", "CC-BY-NC-SA-4.0")
    assert pulled.returncode == 0
    outside = tmp_path / "outside.txt"
    outside.write_text("not the store's")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("not the store's")
    before = _files(tmp_path)
    hostile = hostile.replace("{victim}", str(victim))
    assert hostile.startswith(str(tmp_path)) or not hostile.startswith("/")

    removed = konak_main("models", "remove", "w", hostile, *common)

    line = one_error_line(removed)
    assert "w: removed" not in removed.stdout  # checked before anything is removed
    assert line.startswith("konak models: ")
    assert line.endswith("[invalid_model_id]")
    assert _files(tmp_path) == before
    path = konak_main("models", "path", "w", *common)
    assert path.returncode == 0
    assert Path(path.stdout.strip()).read_bytes() == BODY


def test_path_and_rollback_refuse_an_id_that_names_a_directory_outside_the_store(
    tmp_path: Path, konak_main: KonakMain
) -> None:
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(render({}, {}))
    common = ["--models-dir", str(tmp_path / "m"), "--manifest", str(manifest)]
    for action in ("path", "rollback"):
        line = one_error_line(konak_main("models", action, "../victim", *common))
        assert line.endswith("[invalid_model_id]")

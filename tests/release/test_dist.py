"""The release a device or hub installs (issue 16): ``make dist`` builds a wheel and an sdist
that carry the unit files, the example configs and the docs, and pip puts them where the
units expect them (``/opt/konak/.venv/share/...``)."""

from __future__ import annotations

import configparser
import importlib.metadata
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = ("konak-daemon.service", "konak-hub.service")
EXAMPLES = ("konak/daemon/daemon.example.toml", "konak/hub/hub.example.toml")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and sdist of this tree, built as ``make dist`` builds them."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    return out


def _unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def test_the_wheel_installs_the_units_examples_and_docs_where_the_units_point(
    dist: Path, tmp_path: Path
) -> None:
    (wheel,) = dist.glob("konak-*.whl")
    prefix = tmp_path / "venv"  # stands for /opt/konak/.venv
    # A venv of its own: pip installing with --prefix would first uninstall this
    # environment's konak (the editable one the tests run).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a tree on it: "installed"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(prefix / "bin" / "python"), "install",
         "--no-deps", "--no-index", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        env=clean,
    )  # fmt: skip
    share = prefix / "share"
    for unit in UNITS:
        installed = share / "konak" / "systemd" / unit
        assert installed.read_text() == (REPO / "systemd" / unit).read_text()
        service = _unit(installed.read_text())
        # The docs a unit names are installed, at the path it names.
        doc = service["Unit"]["Documentation"].removeprefix("file:///opt/konak/.venv/")
        assert (prefix / doc).is_file(), doc
        # And it runs the installed command.
        command = service["Service"]["ExecStart"].split()[0]
        assert command == "/opt/konak/.venv/bin/konak"
    assert (prefix / "bin" / "konak").is_file()
    # And the environment the tests run in still has its editable konak.
    found = [
        d.read_text("direct_url.json") or "" for d in importlib.metadata.distributions(name="konak")
    ]
    assert any('"editable": true' in text for text in found)
    for example in EXAMPLES:
        name = Path(example).name
        assert (share / "konak" / "examples" / name).read_text() == (REPO / example).read_text()
    docs = {p.name for p in (REPO / "docs").glob("*.md")}
    assert docs <= {p.name for p in (share / "doc" / "konak").glob("*.md")}
    assert (share / "doc" / "konak" / "protocol" / "intent.schema.json").is_file()


def test_the_wheel_carries_the_model_manifest_and_examples_as_package_data(dist: Path) -> None:
    (wheel,) = dist.glob("konak-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"konak/edge_models/models.toml", "konak/py.typed", *EXAMPLES} <= names
    assert not [n for n in names if n.endswith((".pyc", ".sqlite3")) or "__pycache__" in n]
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))
    )
    assert b"konak = konak.cli:main" in entry_points
    # The web console goes with the hub, once `make console` (part of `make setup`) built it.
    built = REPO / "konak" / "hub" / "console_dist"
    if (built / "index.html").exists():
        console = {str(p.relative_to(REPO)) for p in built.rglob("*") if p.is_file()}
        assert console <= names


def test_the_sdist_rebuilds_the_same_release(dist: Path) -> None:
    (sdist,) = dist.glob("konak-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {f"systemd/{u}" for u in UNITS} <= names
    assert {"docs/daemon.md", "docs/hub.md", "LICENSE", "pyproject.toml", *EXAMPLES} <= names
    assert "tests/release/test_dist.py" in names
    assert not [n for n in names if n.endswith(".sqlite3") or "__pycache__" in n]

"""The systemd unit verifies and is hardened."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "systemd" / "konak-daemon.service"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def _unit_here(tmp_path: Path) -> Path:
    # verify checks that ExecStart exists; point it at this machine's interpreter.
    text = UNIT.read_text().replace("/opt/konak/.venv/bin/konak", sys.executable)
    path = tmp_path / UNIT.name
    path.write_text(text)
    return path


def test_the_unit_file_verifies_cleanly(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(_unit_here(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [line for line in proc.stderr.splitlines() if UNIT.name in line]
    assert proc.returncode == 0, proc.stderr
    assert problems == []


def test_the_units_security_exposure_is_below_three(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(_unit_here(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    assert match is not None, proc.stdout[-500:]
    assert float(match.group(1)) < 3.0


def test_the_unit_is_a_notify_service_with_a_watchdog() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "Restart=on-failure",
        "SupplementaryGroups=audio",
        "NoNewPrivileges=yes",
    ):
        assert line in text.splitlines()
    assert re.search(r"^WatchdogSec=\d+", text, re.M)

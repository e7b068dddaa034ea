"""systemd/konak-hub.service passes systemd's own checks."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd/konak-hub.service"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def test_the_hub_unit_verifies_when_its_binary_exists(tmp_path: Path) -> None:
    konak = Path(sys.executable).parent / "konak"
    unit = tmp_path / "konak-hub.service"
    unit.write_text(UNIT.read_text().replace("/opt/konak/.venv/bin/konak", str(konak)))

    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stderr
    assert "Type=notify" in UNIT.read_text()


def test_the_hub_unit_is_hardened() -> None:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )

    exposure = re.search(r"Overall exposure level for konak-hub.service: ([0-9.]+)", done.stdout)
    assert exposure is not None, done.stdout + done.stderr
    assert float(exposure.group(1)) <= 2.0

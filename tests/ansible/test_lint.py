"""The Ansible tree passes ansible-lint (production profile) and every playbook parses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
BIN = Path(sys.executable).parent
PLAYBOOKS = ("site.yml", "rolling_update.yml")

pytestmark = pytest.mark.skipif(
    not (BIN / "ansible-lint").exists() and shutil.which("ansible-lint") is None,
    reason="ansible-lint is in the dev extra",
)


def _env(home: Path) -> dict[str, str]:
    # Ansible and ansible-lint keep their caches under ANSIBLE_HOME and XDG_CACHE_HOME.
    return {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "ANSIBLE_HOME": str(home / "ansible"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "NO_COLOR": "1",
    }


def _run(argv: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ANSIBLE, env=_env(home), text=True, capture_output=True, check=False
    )


def test_every_playbook_passes_the_syntax_check(tmp_path: Path) -> None:
    proc = _run([str(BIN / "ansible-playbook"), "--syntax-check", *PLAYBOOKS], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_ansible_tree_passes_ansible_lint_in_the_production_profile(tmp_path: Path) -> None:
    proc = _run([str(BIN / "ansible-lint"), "--offline", "--nocolor"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Profile 'production' was required, and it passed" in proc.stderr + proc.stdout

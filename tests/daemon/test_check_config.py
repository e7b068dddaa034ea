"""``konak daemon check-config``: what ``run`` would refuse, found without audio or a broker
(Ansible runs it after writing daemon.toml), each problem one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GOOD = """
[device]
tenant = "acme"
device = "kitchen-pi"
[audio]
source = "none"
sink = "none"
"""


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "konak.cli", "daemon", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_usable_config_is_summarised(tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text(GOOD)

    done = check(config)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{config}: ok (device acme/kitchen-pi, 1 wake word(s)")
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ('[tts]\nmodel = "no-such-voice"\n', "tts.model: model 'no-such-voice' is not usable"),
        ("[vad]\ntreshold = 0.4\n", "vad.treshold: unknown key"),
        (
            '[intent]\nsentences = { Radio = ["play [the radio"] }\n',
            "sentences.Radio[0] 'play [the radio' does not parse",
        ),
        ('[wake]\nstop_word = "oww-no-such-word"\n', "wake.stop_word: model 'oww-no-such-word'"),
    ],
)
def test_each_problem_is_one_line_and_a_failure(tmp_path: Path, extra: str, error: str) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text(GOOD + extra)

    done = check(config)

    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("konak daemon: ")
    assert error in lines[0]

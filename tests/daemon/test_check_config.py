"""``konak daemon check-config``: what ``run`` would refuse, found without audio or a broker
(Ansible runs it after writing daemon.toml), each problem one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Ran, konak, one_error_line

GOOD = """
[device]
tenant = "acme"
device = "kitchen-pi"
[audio]
source = "none"
sink = "none"
"""


def check(config: Path) -> Ran:
    return konak("daemon", "check-config", "--config", str(config))


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

    line = one_error_line(done)
    assert done.stdout == ""
    assert line.startswith("konak daemon: ")
    assert error in line

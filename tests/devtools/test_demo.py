from __future__ import annotations

import argparse
import wave
from pathlib import Path

import pytest

from konak.devtools import demo

pytestmark = pytest.mark.integration


def test_the_demo_runs_a_whole_voice_turn_from_a_wav_to_a_spoken_reply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reply.wav"
    code = demo.run(argparse.Namespace(out=out, text="turn on the kitchen light"))
    printed = capsys.readouterr().out

    assert code == 0
    assert (tmp_path / "command.wav").exists(), "the spoken command the daemon listened to"
    assert "wake-end     word=hey_jarvis" in printed
    assert "stt-end" in printed
    assert "konak/v1/demo/kitchen-pi/intent" in printed
    assert "konak/v1/demo/kitchen-pi/reply" in printed
    assert '"type":"intent"' in printed
    wire = printed.split("5. What crossed the broker")[1].split("6. ")[0]
    assert '"audio"' not in wire
    assert "run-end" in printed
    with wave.open(str(out)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
    assert seconds > 0.8, "the earcon and a spoken sentence"


def test_the_demo_without_models_says_how_to_get_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KONAK_MODELS_DIR", str(tmp_path / "empty-store"))
    code = demo.run(argparse.Namespace(out=tmp_path / "r.wav", text="turn on the lamp"))
    printed = capsys.readouterr().out

    assert code == 1
    assert "make setup" in printed
    assert not (tmp_path / "r.wav").exists()

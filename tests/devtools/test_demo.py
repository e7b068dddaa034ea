from __future__ import annotations

import argparse
import wave
from pathlib import Path

import pytest

from konak.devtools import demo

pytestmark = pytest.mark.integration


def test_the_demo_runs_a_turn_over_the_broker_and_speaks_the_reply_into_a_wav(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reply.wav"
    code = demo.run(argparse.Namespace(out=out, text="turn on the kitchen light"))
    printed = capsys.readouterr().out

    assert code == 0
    assert '"type":"intent"' in printed
    assert "Turned on the kitchen light." in printed, "the real hub fulfilled it with konak-home"
    assert "zigbee2mqtt/kitchen light/set\n" in printed
    assert '{"state": "ON"}' in printed
    with wave.open(str(out)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
    assert 0.8 < seconds < 5, "one short sentence of speech"


def test_the_demo_without_the_voice_still_shows_the_turn_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KONAK_MODELS_DIR", str(tmp_path / "empty-store"))
    code = demo.run(argparse.Namespace(out=tmp_path / "r.wav", text="turn on the lamp"))
    printed = capsys.readouterr().out

    assert code == 0
    assert "not spoken" in printed
    assert "konak models pull" in printed
    assert not (tmp_path / "r.wav").exists()

"""The vosk binding, proven with the Korean model (the English one is upstream-only)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from konak.daemon.audio import RATE_HZ
from konak.daemon.stt import VoskStt
from konak.edge_models.store import ModelStore

pytestmark = pytest.mark.integration

MODEL = "vosk-ko"


@pytest.fixture(scope="module")
def korean_model(models_dir: Path) -> Path:
    """vosk-ko (253 MB, license not stated) is not in the default set: it is installed
    only by `konak models pull vosk-ko --accept-license NOASSERTION`."""
    root = Path(os.environ.get("KONAK_VOSK_MODELS_DIR", models_dir))
    store = ModelStore(root)
    if store.record(MODEL) is None:
        pytest.skip(f"{MODEL} is not installed in {root}")
    return store.path(MODEL)


def test_the_vosk_engine_loads_a_model_and_decodes_a_stream(korean_model: Path, speech) -> None:
    stt = VoskStt(korean_model)
    silence = stt.transcribe(np.zeros(RATE_HZ, np.int16))
    assert silence.text == ""
    assert not silence.rejected
    samples = speech(0.3, "turn on the kitchen light.", 0.5)
    stream = stt.start()
    partials = []
    for offset in range(0, samples.size, 1280):
        stream.feed(samples[offset : offset + 1280])
        partials.append(stream.partial())
    heard = stream.finish()
    assert all(isinstance(p, str) for p in partials)
    assert isinstance(heard.text, str)
    if heard.text:
        assert heard.command_start_seconds is not None
        assert 0.0 <= heard.command_start_seconds <= samples.size / RATE_HZ


def test_vosk_with_a_phrase_list_rejects_silence_instead_of_forcing_a_phrase(
    korean_model: Path,
) -> None:
    stt = VoskStt(korean_model, phrases=["불 켜"], prefixes=("hey jarvis", "jarvis"))
    result = stt.transcribe(np.zeros(RATE_HZ, np.int16))
    assert result.rejected
    assert result.text == ""

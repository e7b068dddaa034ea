"""Warming each engine before the daemon says READY=1, so the first turn is as fast as the
hundredth: onnxruntime allocates and picks kernels on its first run, hassil compiles its
templates on its first match, pocketsphinx touches its model pages on its first search."""

from __future__ import annotations

import logging
from typing import Final

import numpy as np

from konak.daemon.audio import CHUNK_SAMPLES, RATE_HZ, Samples
from konak.daemon.intent import IntentRecognizer
from konak.daemon.stt import SttEngine
from konak.daemon.tts import TtsEngine
from konak.daemon.vad import FRAME_SAMPLES, SileroVad
from konak.daemon.wake import OpenWakeWord

logger = logging.getLogger(__name__)

WARM_SENTENCES: Final = ("turn on the kitchen light", "what time is it")
WARM_REPLY: Final = "Ready."


def _noise(samples: int) -> Samples:
    # Quiet noise rather than digital silence: some kernels take shortcuts on zeros.
    rng = np.random.default_rng(0)
    return rng.normal(0, 30, samples).astype(np.int16)


def warm_wake(wake: OpenWakeWord) -> None:
    """Run the wake pipeline over half a second, then forget it."""
    for _ in range(6):
        wake.process(_noise(CHUNK_SAMPLES))
    wake.reset()


def warm_vad(vad: SileroVad) -> None:
    """Run the VAD over a few frames, then forget them."""
    for _ in range(4):
        vad(_noise(FRAME_SAMPLES))
    vad.reset()


def warm_stt(stt: SttEngine) -> None:
    """Decode a short stretch of noise through the streaming path."""
    stream = stt.start()
    stream.feed(_noise(RATE_HZ // 2))
    stream.finish()


def warm_intents(intents: IntentRecognizer) -> None:
    """Match a few sentences (hassil compiles templates on first use)."""
    for sentence in WARM_SENTENCES:
        intents.recognize(sentence)


def warm_tts(tts: TtsEngine) -> None:
    """Synthesise one short sentence and discard it."""
    for _samples, _rate in tts.sentences(WARM_REPLY):
        pass

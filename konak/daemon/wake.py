"""Wake word detection: openWakeWord's three ONNX stages run directly with onnxruntime.

The feature pipeline follows openwakeword 0.6.0 (``utils.AudioFeatures``): every 80 ms,
a mel spectrogram of the newest 1280 samples (+480 of context) is appended (x/10 + 2);
the embedding model runs on the last 76 mel frames (76x32) and appends one 96-value
embedding; each word's classifier scores the last 16 embeddings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from konak.daemon.audio import CHUNK_SAMPLES, Samples
from konak.daemon.errors import EngineError
from konak.daemon.onnx_session import onnx_session

logger = logging.getLogger(__name__)

MELSPEC_MODEL: Final = "oww-melspectrogram"  # the feature models every wake word shares
EMBEDDING_MODEL: Final = "oww-embedding"
MEL_WINDOW_FRAMES: Final = 76
MEL_MAX_FRAMES: Final = 10 * 97
FEATURE_FRAMES: Final = 16
FEATURE_MAX_FRAMES: Final = 120
CONTEXT_SAMPLES: Final = 480
WARMUP_PREDICTIONS: Final = 5  # openwakeword zeroes the first five scores


@dataclass(frozen=True)
class Detection:
    """A wake word crossed its threshold."""

    word: str
    score: float


class WakeEngine(Protocol):
    """Scores each 80 ms chunk for every wake word."""

    def process(self, samples: Samples) -> dict[str, float]: ...

    def reset(self) -> None: ...


class OpenWakeWord:
    """openWakeWord with several classifiers sharing one feature pipeline."""

    def __init__(self, melspec: Path, embedding: Path, words: dict[str, Path]) -> None:
        self._mel = onnx_session(melspec)
        self._emb = onnx_session(embedding)
        self._words = {name: onnx_session(path) for name, path in words.items()}
        self._mel_input = self._mel.get_inputs()[0].name
        self._emb_input = self._emb.get_inputs()[0].name
        self.reset()

    def melspec(self, samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The mel frames of ``samples`` (8 per 80 ms chunk with its 480 samples of context),
        scaled as openWakeWord does."""
        out = self._mel.run(None, {self._mel_input: samples[None, :]})[0]
        mel: npt.NDArray[np.float32] = np.squeeze(out).astype(np.float32) / 10 + 2
        return mel

    def embed(self, mel_window: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The 96-value embedding of a window of 76 mel frames."""
        batch = mel_window[None, :, :, None].astype(np.float32)
        return np.asarray(self._emb.run(None, {self._emb_input: batch})[0], np.float32).reshape(
            -1, 96
        )

    def reset(self) -> None:
        """Forget all audio; the feature buffer starts from seeded noise, as upstream."""
        noise = np.random.default_rng(0).integers(-1000, 1000, 16000 * 4).astype(np.float32)
        mel = self.melspec(noise)
        windows = [
            mel[i : i + MEL_WINDOW_FRAMES]
            for i in range(0, mel.shape[0] - MEL_WINDOW_FRAMES + 1, 8)
        ]
        self._features = np.vstack([self.embed(w) for w in windows])
        self._mel_buffer = np.ones((MEL_WINDOW_FRAMES, 32), np.float32)
        self._raw = np.zeros(CONTEXT_SAMPLES, np.float32)
        self._predictions = 0

    def process(self, samples: Samples) -> dict[str, float]:
        """Scores of each word after one 80 ms chunk (1280 samples)."""
        if samples.size != CHUNK_SAMPLES:
            raise EngineError(f"wake engine needs {CHUNK_SAMPLES}-sample chunks")
        audio = np.concatenate([self._raw, samples.astype(np.float32)])
        self._raw = audio[-CONTEXT_SAMPLES:]
        self._mel_buffer = np.vstack([self._mel_buffer, self.melspec(audio)])[-MEL_MAX_FRAMES:]
        embedding = self.embed(self._mel_buffer[-MEL_WINDOW_FRAMES:])
        self._features = np.vstack([self._features, embedding])[-FEATURE_MAX_FRAMES:]
        window = self._features[-FEATURE_FRAMES:][None, :, :].astype(np.float32)
        self._predictions += 1
        scores: dict[str, float] = {}
        for name, session in self._words.items():
            out = session.run(None, {session.get_inputs()[0].name: window})[0]
            score = float(np.asarray(out).reshape(-1)[0])
            scores[name] = score if self._predictions > WARMUP_PREDICTIONS else 0.0
        return scores


class WakeDetector:
    """Thresholds per word and a refractory period on top of a :class:`WakeEngine`."""

    def __init__(
        self, engine: WakeEngine, thresholds: dict[str, float], refractory_seconds: float
    ) -> None:
        self.engine = engine
        self.thresholds = thresholds
        self.refractory_seconds = refractory_seconds
        self._quiet_until = -1.0

    def process(self, samples: Samples, at_seconds: float) -> Detection | None:
        """The best word over its threshold in this chunk, outside the refractory period."""
        scores = self.engine.process(samples)
        if at_seconds < self._quiet_until:
            return None
        hits = [(s, w) for w, s in scores.items() if s >= self.thresholds.get(w, 0.5)]
        if not hits:
            return None
        score, word = max(hits)
        self._quiet_until = at_seconds + self.refractory_seconds
        return Detection(word, min(1.0, max(0.0, score)))

    def reset(self) -> None:
        """Forget buffered audio (after playback, so the reply cannot wake the device)."""
        self.engine.reset()

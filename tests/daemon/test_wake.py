"""Wake word thresholds and the refractory period, over a fake engine."""

from __future__ import annotations

import numpy as np

from konak.daemon.audio import CHUNK_SAMPLES, Samples
from konak.daemon.wake import WakeDetector


class ScoreScript:
    """Returns the next scripted scores for each chunk."""

    def __init__(self, scores: list[dict[str, float]]) -> None:
        self.scores = iter(scores)
        self.resets = 0

    def process(self, samples: Samples) -> dict[str, float]:
        return next(self.scores)

    def reset(self) -> None:
        self.resets += 1


CHUNK = np.zeros(CHUNK_SAMPLES, np.int16)


def _run(detector: WakeDetector, n: int) -> list[str | None]:
    out = []
    for i in range(n):
        hit = detector.process(CHUNK, i * 0.08)
        out.append(hit.word if hit else None)
    return out


def test_each_word_has_its_own_threshold_and_the_best_word_wins() -> None:
    engine = ScoreScript(
        [
            {"jarvis": 0.6, "alexa": 0.2},
            {"jarvis": 0.3, "alexa": 0.85},
            {"jarvis": 0.9, "alexa": 0.95},
        ]
    )
    detector = WakeDetector(engine, {"jarvis": 0.5, "alexa": 0.9}, refractory_seconds=0.01)
    assert _run(detector, 3) == ["jarvis", None, "alexa"]


def test_a_wake_word_is_not_detected_twice_within_the_refractory_period() -> None:
    engine = ScoreScript([{"w": 0.9}] * 30)
    detector = WakeDetector(engine, {"w": 0.5}, refractory_seconds=1.0)
    hits = [i for i, word in enumerate(_run(detector, 30)) if word]
    assert hits == [0, 13, 26]  # 1.0 s / 0.08 s per chunk


def test_scores_above_one_are_reported_as_at_most_one() -> None:
    detector = WakeDetector(ScoreScript([{"w": 1.2}]), {"w": 0.5}, refractory_seconds=1.0)
    hit = detector.process(CHUNK, 0.0)
    assert hit is not None
    assert hit.score == 1.0

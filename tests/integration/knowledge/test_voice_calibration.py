"""The voice thresholds measured with the real embedding model on phrasings they were not
chosen on (voice_calibration.py; the figures are in docs/knowledge-voice.md)."""

from __future__ import annotations

import pytest

from .voice_calibration import (
    CALIBRATED_ANSWER,
    CALIBRATED_ROUTING,
    figures,
    load_voice,
    memory,
    pair_scores,
    score_cases,
    sweep,
)
from .voice_phrasings import CASES, OTHER_QUESTION, SAME_QUESTION

pytestmark = pytest.mark.integration


async def test_the_thresholds_chosen_on_the_tune_split_hold_on_the_held_out_phrasings() -> None:
    voice = load_voice()
    tune = await score_cases(voice, [c for c in CASES if c.split == "tune"])
    held = await score_cases(voice, [c for c in CASES if c.split == "held_out"])

    assert sweep(tune) == (CALIBRATED_ANSWER, CALIBRATED_ROUTING)
    f = figures(held, CALIBRATED_ANSWER, CALIBRATED_ROUTING)
    assert f.answer_precision >= 0.95
    assert f.answer_recall >= 0.7
    assert f.routing_precision >= 0.95
    assert f.routing_recall >= 0.6
    assert f.accuracy >= 0.8


def test_the_cache_threshold_separates_a_question_asked_again_from_another_one() -> None:
    voice = load_voice()
    embed = memory(voice).embed_now
    threshold = voice.settings().cache_threshold

    assert min(pair_scores(embed, SAME_QUESTION)) >= threshold
    assert max(pair_scores(embed, OTHER_QUESTION)) < threshold

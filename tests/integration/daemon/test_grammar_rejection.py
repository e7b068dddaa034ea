"""Grammar mode rejects speech outside the grammar instead of forcing it onto a command."""

from __future__ import annotations

import pytest

from konak.daemon.engines import Engines
from konak.daemon.stt import PocketSphinxStt

pytestmark = pytest.mark.integration

OUT_OF_GRAMMAR = [
    "the weather is nice today",
    "my cat likes to sleep on the sofa",
    "please call my mother tomorrow",
    "how tall is the eiffel tower",
    "I bought three apples at the market",
    "tell me a joke about penguins",
    "what did you have for breakfast",
    "the train to london leaves at noon",
    "can you recommend a good book",
    "we should paint the fence green",
]
IN_GRAMMAR = [
    "turn on the kitchen light",
    "turn off the bedroom lamp",
    "what time is it",
    "what is the date today",
    "cancel the timer",
    "switch off the kitchen light",
]


@pytest.mark.parametrize("wake", ["", "hey jarvis "], ids=["command alone", "after the wake word"])
def test_out_of_grammar_speech_is_rejected_and_commands_are_accepted(
    shared_engines: Engines, speech, record_property, wake: str
) -> None:
    stt = shared_engines.stt
    assert isinstance(stt, PocketSphinxStt)
    heard = {t: stt.transcribe(speech(0.3, wake + t, 0.7)) for t in OUT_OF_GRAMMAR + IN_GRAMMAR}
    false_accepts = [t for t in OUT_OF_GRAMMAR if heard[t].text]
    right = [t for t in IN_GRAMMAR if heard[t].text == t]
    rate = len(false_accepts) / len(OUT_OF_GRAMMAR)
    record_property("false_accept_rate", rate)
    scores = {t: None if h.score is None else round(h.score, 2) for t, h in heard.items()}
    print(f"grammar false-accept rate: {rate:.2f} {false_accepts}; scores {scores}")
    assert rate <= 0.1, false_accepts
    assert all(heard[t].rejected for t in OUT_OF_GRAMMAR if t not in false_accepts)
    assert len(right) >= len(IN_GRAMMAR) - 1, sorted(set(IN_GRAMMAR) - set(right))

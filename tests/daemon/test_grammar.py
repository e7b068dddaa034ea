"""JSGF generation from hassil sentences and the wake-word prefix helpers."""

from __future__ import annotations

import pytest

from konak.daemon.grammar import grammar_words, strip_prefix, wake_prefixes, words_of
from konak.daemon.intent import IntentRecognizer
from konak.daemon.stt import agreement


@pytest.fixture(scope="module")
def recognizer() -> IntentRecognizer:
    return IntentRecognizer(
        "en",
        intent_names=["HassTurnOn", "HassGetCurrentTime"],
        sentences={"PlayRadio": ["play [the] radio [in the {area}]"]},
        slot_lists={"name": ["kitchen light"], "area": ["kitchen"]},
    )


def test_a_command_is_recognised_with_its_slots(recognizer: IntentRecognizer) -> None:
    result = recognizer.recognize("turn on the kitchen light")
    assert result is not None
    assert (result.name, result.slots) == ("HassTurnOn", {"area": "kitchen", "domain": "light"})


def test_custom_sentences_from_the_config_are_recognised(recognizer: IntentRecognizer) -> None:
    result = recognizer.recognize("play the radio in the kitchen")
    assert result is not None
    assert (result.name, result.slots) == ("PlayRadio", {"area": "kitchen"})


def test_text_matching_no_intent_of_the_device_is_none(recognizer: IntentRecognizer) -> None:
    assert recognizer.recognize("what is the weather like") is None
    assert recognizer.recognize("the cat sat on the mat") is None


def test_the_grammar_holds_the_devices_sentences_and_slot_values(
    recognizer: IntentRecognizer,
) -> None:
    jsgf = recognizer.grammar(lambda word: True)
    assert jsgf.startswith("#JSGF V1.0;")
    words = set(grammar_words(jsgf))
    assert {"turn", "on", "kitchen", "light", "time", "radio"} <= words
    assert "weather" not in words


def test_words_the_recogniser_does_not_know_drop_their_sentences(
    recognizer: IntentRecognizer,
) -> None:
    jsgf = recognizer.grammar(lambda word: word != "radio")
    assert "radio" not in grammar_words(jsgf)
    assert "kitchen" in grammar_words(jsgf)


def test_turkish_sentences_load() -> None:
    turkish = IntentRecognizer("tr", intent_names=["HassTurnOn"], sentences={}, slot_lists={})
    assert turkish.language == "tr"


def test_wake_prefixes_cover_the_phrase_and_its_last_word() -> None:
    assert wake_prefixes(["hey_jarvis"]) == ("hey jarvis", "jarvis")
    assert strip_prefix("hey jarvis turn on", ("hey jarvis", "jarvis")) == "turn on"
    assert strip_prefix("jarvis", ("jarvis",)) == ""
    assert strip_prefix("jarvisx on", ("jarvis",)) == "jarvisx on"


def test_words_are_lowercased_without_punctuation() -> None:
    assert words_of("Turn ON the light-switch, now!") == [
        "turn",
        "on",
        "the",
        "light",
        "switch",
        "now",
    ]


def test_agreement_is_one_for_equal_and_low_for_unrelated_sequences() -> None:
    assert agreement(["a", "b"], ["a", "b"]) == 1.0
    assert agreement([], []) == 1.0
    assert agreement(["a", "b", "c", "d"], ["x", "y", "z"]) == 0.0

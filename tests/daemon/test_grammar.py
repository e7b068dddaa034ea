"""JSGF generation from hassil sentences and the wake-word prefix helpers."""

from __future__ import annotations

import re

import pytest

from konak.daemon.errors import EngineError
from konak.daemon.grammar import (
    FULL,
    GrammarLimits,
    grammar_words,
    inlined_size,
    strip_prefix,
    wake_prefixes,
    words_of,
)
from konak.daemon.intent import IntentRecognizer
from konak.daemon.settings import DEFAULT_INTENTS
from konak.daemon.stt import agreement

PREFIXES = ("hey jarvis", "jarvis")
NAMES = ["kitchen light", "bedroom lamp", "ceiling fan", "back door lock", "coffee maker"]
AREAS = ["kitchen", "bedroom", "living room"]
# Said to a device with the names and areas above; each is one of its intents.
COMMANDS = [
    "turn on the kitchen light",
    "switch off the bedroom lamp",
    "turn the kitchen light on",
    "turn on the lights in the kitchen",
    "turn off the living room lights",
    "turn off all the lights",
    "turn on the ceiling fan",
    "turn on the coffee maker",
    "lock the back door lock",
    "what time is it",
    "what's the date today",
    "set a timer for five minutes",
    "set a ten minute timer",
    "start a timer for one hour and thirty minutes",
    "cancel my timer",
    "how much time is left on my timers",
    "timer status",
]
NOT_COMMANDS = [
    "what is the weather like",
    "turn on the television",
    "turn on the lights",  # needs the satellite's area, which the device never passes
    "lock the kitchen light",
    "turn on the back door lock",
    "set a timer for five minute s",
    "open the blinds in the kitchen",  # no name is a cover
]


def _accepts(jsgf: str, text: str) -> bool:
    """Whether the grammar (the subset JsgfBuilder writes) produces ``text``."""
    rules = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^(?:public )?<(\w+)> = (.*);$", jsgf, re.MULTILINE)
    }

    def pattern(body: str, depth: int = 0) -> str:
        assert depth < 50
        out = []
        for token in body.split():
            if token.startswith("<"):
                out.append("(?:" + pattern(rules[token[1:-1]], depth + 1) + ")")
            elif token in ("(", "["):
                out.append("(?:")
            elif token == ")":
                out.append(")")
            elif token == "]":
                out.append(")?")
            elif token == "|":
                out.append("|")
            else:
                out.append(re.escape(token) + " ")
        return "".join(out)

    return re.fullmatch(pattern(rules["command"]), text + " ") is not None


@pytest.fixture(scope="module")
def recognizer() -> IntentRecognizer:
    return IntentRecognizer(
        "en",
        intent_names=["HassTurnOn", "HassGetCurrentTime"],
        sentences={"PlayRadio": ["play [the] radio [in the {area}]"]},
        slot_lists={"name": ["kitchen light"], "area": ["kitchen"]},
    )


@pytest.fixture(scope="module")
def device() -> IntentRecognizer:
    return IntentRecognizer(
        "en", intent_names=DEFAULT_INTENTS, sentences={}, slot_lists={"name": NAMES, "area": AREAS}
    )


@pytest.fixture(scope="module")
def device_grammar(device: IntentRecognizer) -> str:
    return device.grammar(lambda word: True, PREFIXES)


def test_a_command_is_recognised_with_its_slots(recognizer: IntentRecognizer) -> None:
    result = recognizer.recognize("turn on the kitchen light")
    assert result is not None
    assert (result.name, result.slots) == ("HassTurnOn", {"area": "kitchen", "domain": "light"})


def test_custom_sentences_from_the_config_are_recognised(recognizer: IntentRecognizer) -> None:
    result = recognizer.recognize("play the radio in the kitchen")
    assert result is not None
    assert (result.name, result.slots) == ("PlayRadio", {"area": "kitchen"})


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("turn on [the {name", "Unable to find end of optional"),
        ("turn on the {name}]", "Error in chunk"),
        ("play (radio|music", "Unable to find end of group"),
    ],
)
def test_a_custom_sentence_that_does_not_parse_is_refused_when_loaded(
    template: str, message: str
) -> None:
    # hassil compiles templates only at the first recognition, where one broken template
    # would fail every turn of the device: it is refused up front, named by its place.
    with pytest.raises(EngineError, match=r"sentences\.PlayRadio\[1\] .* does not parse") as got:
        IntentRecognizer(
            "en",
            intent_names=[],
            sentences={"PlayRadio": ["play the radio", template]},
            slot_lists={},
        )
    assert message in got.value.message


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


@pytest.mark.parametrize("command", COMMANDS)
def test_the_devices_commands_are_in_its_grammar_and_recognised(
    device: IntentRecognizer, device_grammar: str, command: str
) -> None:
    assert _accepts(device_grammar, command)
    assert _accepts(device_grammar, "hey jarvis " + command)
    assert _accepts(device_grammar, "jarvis " + command)
    assert device.recognize(command) is not None


@pytest.mark.parametrize("text", NOT_COMMANDS)
def test_what_the_device_cannot_act_on_is_not_in_its_grammar(
    device: IntentRecognizer, device_grammar: str, text: str
) -> None:
    assert not _accepts(device_grammar, text)


def test_a_plural_written_inside_a_word_is_one_word_not_a_letter(device_grammar: str) -> None:
    assert "s" not in grammar_words(device_grammar)
    assert {"timers", "hours", "minutes", "seconds"} <= set(grammar_words(device_grammar))


def test_a_name_stands_only_in_the_sentences_of_its_domain(device_grammar: str) -> None:
    assert _accepts(device_grammar, "lock the back door lock")
    assert not _accepts(device_grammar, "lock the coffee maker")
    assert _accepts(device_grammar, "turn off the coffee maker")


def test_domains_no_name_belongs_to_are_left_out() -> None:
    lights = IntentRecognizer(
        "en", intent_names=DEFAULT_INTENTS, sentences={}, slot_lists={"name": ["desk lamp"]}
    )
    words = set(grammar_words(lights.grammar(lambda word: True)))
    assert {"lock", "unlock", "scene", "script", "open", "blinds", "fan"}.isdisjoint(words)
    assert lights.domains() == {"light"}


def test_timers_take_the_common_numbers_unless_the_limits_allow_every_one(
    device: IntentRecognizer, device_grammar: str
) -> None:
    assert _accepts(device_grammar, "set a timer for forty five minutes")
    assert not _accepts(device_grammar, "set a timer for thirty seven minutes")
    full = device.grammar(lambda word: True, PREFIXES, FULL)
    assert _accepts(full, "set a timer for thirty seven minutes")


def test_the_default_grammar_is_less_than_half_the_size_of_every_variant(
    device: IntentRecognizer, device_grammar: str
) -> None:
    full = device.grammar(lambda word: True, PREFIXES, FULL)
    assert inlined_size(device_grammar) < inlined_size(full) / 2
    capped = device.grammar(lambda word: True, PREFIXES, GrammarLimits(max_alternatives=1))
    assert inlined_size(capped) < inlined_size(device_grammar)
    assert _accepts(capped, "turn on the kitchen light")
    assert not _accepts(capped, "switch on the kitchen light")


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

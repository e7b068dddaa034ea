"""The STT engines' decisions, with fake decoder output: what is a command, what is
rejected, where the command starts; vosk's stream over a fake recognizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from konak.daemon.stt import (
    FRAMES_PER_SECOND,
    Pronunciations,
    Span,
    Transcript,
    command_words,
    grammar_transcript,
    non_rhotic,
    open_transcript,
    phone_loop_score,
)

PREFIXES = ("hey jarvis", "jarvis")


def _path(*words: tuple[str, int, int, float]) -> list[Span]:
    return [Span(text, start, end, score) for text, start, end, score in words]


# "hey jarvis turn on the light" with silence around it and a null transition inside.
GRAMMAR_PATH = _path(
    ("<sil>", 0, 19, -20.0),
    ("hey", 20, 39, -60.0),
    ("jarvis", 40, 79, -120.0),
    ("(NULL)", 79, 79, 0.0),
    ("turn", 80, 99, -40.0),
    ("on", 100, 109, -20.0),
    ("<sil>", 110, 114, -5.0),
    ("the", 115, 124, -20.0),
    ("light", 125, 159, -75.0),
    ("<sil>", 160, 199, -40.0),
)


def _phones(score_per_frame: float) -> list[Span]:
    """A phone loop over the same 200 frames, each 10-frame phone scoring the same."""
    return [Span("AH", f, f + 9, score_per_frame * 10) for f in range(0, 200, 10)]


def test_the_command_is_what_follows_the_wake_word() -> None:
    command = command_words(GRAMMAR_PATH, PREFIXES)
    assert [w.text for w in command] == ["turn", "on", "the", "light"]
    assert (
        command_words(_path(("jarvis", 0, 40, 0.0), ("turn", 41, 60, 0.0)), PREFIXES)[0].text
        == "turn"
    )
    assert command_words(_path(("hey", 0, 9, 0.0), ("jarvis", 10, 40, 0.0)), PREFIXES) == []


def test_the_score_compares_the_grammar_and_the_phone_loop_over_the_command_frames() -> None:
    command = command_words(GRAMMAR_PATH, PREFIXES)
    # Frames 80..159: the grammar's spans there sum to -160 (silence and null included).
    assert phone_loop_score(command, GRAMMAR_PATH, _phones(-2.0)) == pytest.approx(0.0)
    assert phone_loop_score(command, GRAMMAR_PATH, _phones(-1.0)) == pytest.approx(-1.0)
    assert phone_loop_score([], GRAMMAR_PATH, _phones(-1.0)) is None


def test_a_command_the_grammar_explains_well_is_accepted_with_where_it_starts() -> None:
    heard = grammar_transcript(GRAMMAR_PATH, _phones(-2.0), prefixes=PREFIXES, min_score=-0.5)
    assert heard == Transcript(
        "turn on the light",
        candidate="hey jarvis turn on the light",
        score=pytest.approx(0.0),
        command_start_seconds=80 / FRAMES_PER_SECOND,
    )


def test_speech_the_phone_loop_explains_much_better_is_rejected() -> None:
    heard = grammar_transcript(GRAMMAR_PATH, _phones(-1.0), prefixes=PREFIXES, min_score=-0.5)
    assert heard.rejected
    assert heard.text == ""
    assert heard.candidate == "hey jarvis turn on the light"
    assert heard.score == pytest.approx(-1.0)
    assert heard.command_start_seconds is None


def test_the_wake_word_alone_or_nothing_is_rejected() -> None:
    only_wake = _path(("hey", 0, 19, -1.0), ("jarvis", 20, 59, -1.0))
    assert grammar_transcript(only_wake, _phones(0), prefixes=PREFIXES, min_score=-9).rejected
    assert grammar_transcript([], [], prefixes=PREFIXES, min_score=-9).rejected


def test_the_open_model_transcript_drops_the_wake_word_and_never_rejects() -> None:
    heard = open_transcript(GRAMMAR_PATH, PREFIXES)
    assert (heard.text, heard.rejected) == ("turn on the light", False)
    assert heard.command_start_seconds == 0.8
    assert open_transcript([], PREFIXES) == Transcript("")


class FakeRecognizer:
    """vosk's KaldiRecognizer: ends a result at each empty chunk (a pause)."""

    def __init__(self, words: list[tuple[str, float]]) -> None:
        self.pending = list(words)
        self.heard: list[tuple[str, float]] = []
        self.words = False

    def SetWords(self, on: bool) -> None:
        self.words = on

    def AcceptWaveform(self, data: bytes) -> bool:
        if not any(data):
            return bool(self.heard)
        self.heard.append(self.pending.pop(0))
        return False

    def _result(self) -> str:
        result = [{"word": w, "start": t, "end": t + 0.3, "conf": 1.0} for w, t in self.heard]
        self.heard = []
        return json.dumps({"text": " ".join(r["word"] for r in result), "result": result})  # type: ignore[misc]

    def Result(self) -> str:
        return self._result()

    def FinalResult(self) -> str:
        return self._result()

    def PartialResult(self) -> str:
        return json.dumps({"partial": " ".join(w for w, _ in self.heard)})


class FakeVosk:
    def __init__(self, words: list[tuple[str, float]]) -> None:
        self.recognizer = FakeRecognizer(words)
        self.args: tuple[Any, ...] = ()

    def KaldiRecognizer(self, *args: Any) -> FakeRecognizer:
        self.args = args
        return self.recognizer


def _vosk(words: list[tuple[str, float]], phrases: list[str] | None) -> tuple[Any, FakeVosk]:
    from konak.daemon.stt import VoskStt

    fake = FakeVosk(words)
    stt = VoskStt.__new__(VoskStt)
    stt._model, stt._phrases, stt.prefixes, stt._vosk = object(), phrases, PREFIXES, fake
    return stt, fake


SPEECH = np.ones(1280, np.int16)
PAUSE = np.zeros(1280, np.int16)


def test_vosk_keeps_what_it_heard_before_a_pause_and_strips_the_wake_word() -> None:
    stt, fake = _vosk(
        [("hey", 0.1), ("jarvis", 0.3), ("turn", 0.9), ("on", 1.1), ("the", 1.2), ("light", 1.4)],
        ["turn", "on", "the", "light"],
    )
    stream = stt.start()
    assert fake.recognizer.words
    assert json.loads(fake.args[2]) == ["turn", "on", "the", "light", *PREFIXES, "[unk]"]
    for chunk in (SPEECH, SPEECH, PAUSE, SPEECH, SPEECH):
        stream.feed(chunk)
    assert stream.partial() == "turn on"
    for chunk in (SPEECH, SPEECH):
        stream.feed(chunk)
    heard = stream.finish()
    assert heard == Transcript(
        "turn on the light",
        candidate="hey jarvis turn on the light",
        command_start_seconds=0.9,
    )


def test_vosk_with_phrases_rejects_a_word_outside_them() -> None:
    stt, _ = _vosk([("jarvis", 0.2), ("turn", 0.6), ("[unk]", 0.8)], ["turn"])
    stream = stt.start()
    for _ in range(3):
        stream.feed(SPEECH)
    heard = stream.finish()
    assert (heard.text, heard.rejected, heard.candidate) == ("", True, "jarvis turn [unk]")


def test_vosk_without_phrases_hears_silence_as_nothing_rejected() -> None:
    stt, _ = _vosk([], None)
    stream = stt.start()
    stream.feed(PAUSE)
    assert stream.partial() == ""
    assert stream.finish() == Transcript("")


@pytest.mark.parametrize(
    ("phones", "said"),
    [
        ("JH AA R V IH S", "JH AA V IH S"),  # jarvis: no R before a consonant
        ("K AA R", "K AA"),  # car: none at the end
        ("R EH D", "R EH D"),  # red: an R that opens a word stays
        ("V EH R IY", "V EH R IY"),  # very: an R between vowels stays
        ("AH L EH K S AH", "AH L EH K S AH"),  # alexa: nothing to drop
    ],
)
def test_the_non_rhotic_form_drops_only_an_r_after_a_vowel_with_no_vowel_next(
    phones: str, said: str
) -> None:
    assert non_rhotic(phones) == said


def test_pronunciations_are_read_for_the_words_asked_only_with_their_alternatives(
    tmp_path: Path,
) -> None:
    dictionary = tmp_path / "cmu.dict"
    dictionary.write_text(
        "jarvis JH AA R V AH S\njarvis(2) JH AA R V IH S\nkitchen K IH CH AH N\n"
        "light L AY T\n\nbroken\nlamp\tL AE M P\n"
    )
    found = Pronunciations(dictionary).lookup(["jarvis", "lamp", "missing"])
    assert found == {"jarvis": ["JH AA R V AH S", "JH AA R V IH S"], "lamp": ["L AE M P"]}

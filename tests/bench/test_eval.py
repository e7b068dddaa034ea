"""``make eval``: the corpus is labelled right, the verdicts and counts are consistent, and a
quick run through the real daemon holds today's recognition floors."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from konak.bench.eval import evaluate
from konak.bench.eval_corpus import (
    COMMANDS,
    DEFAULT_VOICES,
    LEAD_SECONDS,
    NO_WAKE,
    SLOT_LISTS,
    TAIL_SECONDS,
    UNKNOWN,
    Case,
    EvalError,
    Kind,
    Synthesizer,
    Voice,
    parse_voices,
    select,
)
from konak.bench.eval_report import render_markdown
from konak.bench.eval_score import CAUSES, OK_VERDICTS, Heard, judge, read_events, summarize
from konak.daemon.audio import RATE_HZ, read_wav
from konak.daemon.events import Event
from konak.daemon.intent import IntentRecognizer, Recognized
from konak.daemon.settings import DEFAULT_INTENTS
from konak.daemon.skills import LOCAL_INTENTS

# The quick run: two voices, the first seven utterances of each kind (one wording of
# each intent); about 45 s on two shared cores.
QUICK_VOICES = "en-us,en-gb+m3"
QUICK_LIMIT = 7
# Floors for the quick run. At 43f5d67 (before streaming recognition) the daemon got 5 of
# 14 right with 1 false accept; at 3ab37c8 (the phone-loop rejection, the wake word fed
# to the decoder and aligned by the grammar) 13 of 14 with none; the
# floor leaves one command for a run on a loaded machine. Raise them as recognition
# improves; never lower them to let a change pass.
MIN_RIGHT_COMMANDS = 12  # of 14
MAX_FALSE_ACCEPTS = 1  # of 42
MIN_WAKE_DETECTED = 28  # of 28 utterances spoken after the wake word


KITCHEN_ON = next(c for c in COMMANDS if c.text == "turn on the kitchen light")


@pytest.fixture(scope="module")
def recognizer() -> IntentRecognizer:
    return IntentRecognizer(
        "en",
        intent_names=DEFAULT_INTENTS,
        sentences={},
        slot_lists={k: list(v) for k, v in SLOT_LISTS.items()},
    )


def test_every_command_label_is_what_its_text_is_recognised_as(
    recognizer: IntentRecognizer,
) -> None:
    for case in COMMANDS:
        heard = Heard("v", case.kind, case.text, case.intent, dict(case.slots))
        got = recognizer.recognize(case.text)
        assert got is not None, case.text
        heard.runs, heard.transcript, heard.intent, heard.slots = 1, case.text, got.name, got.slots
        judge(heard, case, recognizer.recognize)
        assert heard.verdict == "right", (case, got)


def test_out_of_grammar_texts_match_no_intent(recognizer: IntentRecognizer) -> None:
    assert [c.text for c in UNKNOWN if recognizer.recognize(c.text) is not None] == []


def test_the_corpus_covers_every_default_intent_and_each_kind() -> None:
    assert len(COMMANDS) >= 40
    assert len(UNKNOWN) >= 20
    assert len(NO_WAKE) >= 20
    assert {c.intent for c in COMMANDS} == set(DEFAULT_INTENTS)
    assert {c.intent for c in COMMANDS[: len(DEFAULT_INTENTS)]} == set(DEFAULT_INTENTS)
    assert "turn on the kitchen light" in {c.text for c in NO_WAKE}
    assert len({c.spoken for c in select(None)}) == len(select(None))


def test_the_default_voices_are_us_and_british_male_and_female_at_130_to_180_wpm() -> None:
    assert len(DEFAULT_VOICES) >= 6
    kinds = {(v.name[:5], v.description.rsplit(" ", 1)[-1]) for v in DEFAULT_VOICES}
    assert {("en-us", "male"), ("en-us", "female"), ("en-gb", "male"), ("en-gb", "female")} <= kinds
    assert all(130 <= v.wpm <= 180 for v in DEFAULT_VOICES)


def test_voices_parse_with_and_without_a_rate() -> None:
    voices = parse_voices("en-us, en-gb+m3@120,en-gb-x-gbclan")
    assert [v.label for v in voices] == ["en-us@150", "en-gb+m3@120", "en-gb-x-gbclan@150"]
    with pytest.raises(EvalError, match="words per minute"):
        parse_voices("en-us@fast")
    with pytest.raises(EvalError, match=r"80\.\.450"):
        parse_voices("en-us@20")


def test_speech_is_padded_with_silence_cached_and_an_unknown_voice_refused(tmp_path: Path) -> None:
    synth = Synthesizer(tmp_path)
    voice = DEFAULT_VOICES[0]
    path = synth.path(voice, KITCHEN_ON)
    samples, rate = read_wav(path)
    lead, tail = round(LEAD_SECONDS * rate), round(TAIL_SECONDS * rate)
    assert rate == RATE_HZ
    assert samples.size > lead + tail + rate  # at least a second of speech
    assert not samples[:lead].any()
    assert not samples[-tail:].any()
    assert samples[lead:-tail].any()
    assert synth.path(voice, KITCHEN_ON) == path  # the second time from the cache
    assert synth.path(Voice(voice.name, voice.wpm + 10), KITCHEN_ON) != path
    with pytest.raises(EvalError, match="no voice 'xx-nosuch'"):
        synth.check(Voice("xx-nosuch", 150))


def test_a_limit_takes_the_first_utterances_of_each_kind() -> None:
    cases = select(2)
    assert [c.kind for c in cases] == [Kind.COMMAND] * 2 + [Kind.UNKNOWN] * 2 + [Kind.NO_WAKE] * 2
    assert cases[0].spoken == f"hey jarvis, {COMMANDS[0].text}"
    assert cases[-1].spoken == NO_WAKE[1].text


def _events(*spec: tuple[str, dict[str, Any], float]) -> list[Event]:
    return [Event(type_, "t-1", data, at=at) for type_, data, at in spec]


def _recognize(text: str) -> Recognized | None:
    right = text == "turn on the kitchen light"
    return Recognized("HassTurnOn", {"area": "kitchen"}) if right else None


def _heard(case: Case, events: list[Event], candidate: str | None = None) -> Heard:
    heard = Heard("v", case.kind, case.text, case.intent, dict(case.slots))
    read_events(heard, events)
    heard.candidate = candidate
    judge(heard, case, _recognize)
    return heard


RUN = ("run-start", {}, 0.0)
WAKE = ("wake-end", {"word": "hey_jarvis", "score": 0.9}, 1.0)
VAD = ("vad-end", {"endpoint": "end", "command_seconds": 2.0}, 3.0)
REJECTED = ("stt-end", {"text": "", "rejected": True}, 4.25)
NOT_UNDERSTOOD = ("error", {"code": "not_understood"}, 4.3)


def test_a_command_given_its_intent_and_slots_is_right_and_its_latency_is_measured() -> None:
    heard = _heard(
        KITCHEN_ON,
        _events(
            RUN,
            WAKE,
            VAD,
            ("stt-end", {"text": "turn on the kitchen light", "rejected": False}, 4.5),
            ("intent-end", {"intent": "HassTurnOn", "slots": {"area": "kitchen"}}, 4.6),
        ),
    )
    assert (heard.verdict, heard.cause, heard.latency_ms) == ("right", None, 1500.0)
    assert heard.wake_score == 0.9


def test_a_command_with_the_wrong_slot_is_a_wrong_intent() -> None:
    heard = _heard(
        KITCHEN_ON,
        _events(
            RUN,
            VAD,
            ("stt-end", {"text": "turn on the bedroom lamp", "rejected": False}, 4.0),
            ("intent-end", {"intent": "HassTurnOn", "slots": {"area": "bedroom"}}, 4.1),
        ),
    )
    assert (heard.verdict, heard.cause) == ("wrong", "wrong_words")


def test_a_light_named_after_its_area_is_the_light_in_that_area() -> None:
    heard = _heard(
        KITCHEN_ON,
        _events(
            RUN,
            VAD,
            ("stt-end", {"text": "the kitchen light", "rejected": False}, 4.0),
            ("intent-end", {"intent": "HassTurnOn", "slots": {"name": "kitchen light"}}, 4.1),
        ),
    )
    assert heard.verdict == "right"


@pytest.mark.parametrize(
    ("events", "candidate", "cause"),
    [
        ([], None, "no_wake"),
        ([RUN, VAD, REJECTED, ("error", {"code": "no_speech"}, 4.3)], "", "no_speech"),
        ([RUN, VAD, REJECTED, NOT_UNDERSTOOD], "the kitchen light", "cut_start"),
        ([RUN, VAD, REJECTED, NOT_UNDERSTOOD], "turn on the kitchen", "cut_end"),
        ([RUN, VAD, REJECTED, NOT_UNDERSTOOD], "", "empty"),
        ([RUN, VAD, REJECTED, NOT_UNDERSTOOD], "turn on the kitchen light", "right_words_rejected"),
        ([RUN, VAD, REJECTED, NOT_UNDERSTOOD], "start our kitchen light", "wrong_words_rejected"),
    ],
)
def test_a_missed_command_names_its_cause(
    events: list[tuple[str, dict[str, Any], float]], candidate: str | None, cause: str
) -> None:
    heard = _heard(KITCHEN_ON, _events(*events), candidate)
    assert (heard.verdict, heard.cause) == ("missed", cause)
    assert heard.latency_ms == (1250.0 if events else None)


def test_speech_that_must_do_nothing_is_judged_by_what_it_caused() -> None:
    accepted = _events(
        RUN,
        VAD,
        ("stt-end", {"text": "turn on the kitchen light", "rejected": False}, 4.0),
        ("intent-end", {"intent": "HassTurnOn", "slots": {}}, 4.1),
    )
    assert _heard(UNKNOWN[0], _events(RUN, VAD, REJECTED, NOT_UNDERSTOOD)).verdict == "rejected"
    assert _heard(UNKNOWN[0], accepted).verdict == "accepted"
    assert _heard(NO_WAKE[0], []).verdict == "silent"
    assert _heard(NO_WAKE[0], _events(RUN, VAD, REJECTED, NOT_UNDERSTOOD)).verdict == "woke"
    assert _heard(NO_WAKE[0], accepted).verdict == "accepted"


def _consistent(s: dict[str, Any]) -> None:
    assert s["commands"] == s["right"] + s["wrong"] + s["missed"]
    assert s["unknown"] == s["unknown_rejected"] + s["unknown_accepted"]
    assert s["no_wake"] == s["no_wake_silent"] + s["no_wake_woke"] + s["no_wake_accepted"]
    assert s["utterances"] == s["commands"] + s["unknown"] + s["no_wake"]
    assert s["false_accepts"] == s["wrong"] + s["unknown_accepted"] + s["no_wake_accepted"]
    assert s["false_rejects"] == s["missed"]
    assert sum(s["causes"].values()) == s["wrong"] + s["missed"]
    assert s["causes"]["no_wake"] <= s["wake_missed"] <= s["wake_spoken"]
    assert s["endpoint_to_transcript"]["n"] <= s["utterances"] - s["no_wake_silent"]


def test_a_summary_adds_up() -> None:
    heard = [
        _heard(KITCHEN_ON, _events(RUN, VAD, REJECTED, NOT_UNDERSTOOD), ""),
        _heard(KITCHEN_ON, []),
        _heard(UNKNOWN[0], _events(RUN, VAD, REJECTED, NOT_UNDERSTOOD)),
        _heard(NO_WAKE[0], []),
    ]
    summary = summarize(heard)
    _consistent(summary)
    assert (summary["missed"], summary["wake_missed"], summary["no_wake_silent"]) == (2, 1, 1)
    assert summary["causes"] == {**dict.fromkeys(CAUSES, 0), "empty": 1, "no_wake": 1}


def test_the_report_has_a_row_per_voice_a_total_and_the_false_accepts() -> None:
    accepted = _events(
        RUN,
        VAD,
        ("stt-end", {"text": "turn on the kitchen light", "rejected": False}, 4.0),
        ("intent-end", {"intent": "HassTurnOn", "slots": {}}, 4.1),
    )
    heard = [_heard(KITCHEN_ON, []), _heard(UNKNOWN[0], accepted), _heard(NO_WAKE[0], [])]
    results = {
        "machine": {
            "cpu": "cpu",
            "cores": 2,
            "memory_gib": 1.0,
            "python": "3.11",
            "load_average": [],
        },
        "started_at": "2026-01-01T00:00:00Z",
        "revision": "abc1234",
        "settings": {
            "wake_words": ["oww-hey-jarvis"],
            "wake_threshold": [0.5],
            "stt": {"engine": "pocketsphinx"},
            "vad": {"end_silence_seconds": 0.7},
            "intents": list(DEFAULT_INTENTS),
            "slot_lists": SLOT_LISTS,
        },
        "corpus": {"command": 1, "unknown": 1, "no_wake": 1},
        "voices": [{"voice": "v", "description": "a voice", **summarize(heard)}],
        "totals": summarize(heard),
        "causes": CAUSES,
        "utterances": [asdict(h) for h in heard],
        "duration_seconds": 1.0,
    }
    page = render_markdown(results)
    assert "| `v` a voice | 3 | 0 of 1 (0.0 %) | 1 | 1 | yes (1 of 1 silent) | 1 of 2 |" in page
    assert "| **total** | 3 |" in page
    assert "- `v` unknown: 'tell me a joke about penguins' -> 'turn on the kitchen light'" in page


@pytest.mark.integration
def test_a_quick_run_through_the_daemon_is_consistent_and_holds_the_floors(
    installed_models: Path, tmp_path: Path
) -> None:
    voices = parse_voices(QUICK_VOICES)
    cases = select(QUICK_LIMIT)
    results = evaluate(
        voices, cases, cache=tmp_path / "cache", models=installed_models, work=tmp_path
    )
    utterances = results["utterances"]
    assert len(utterances) == len(voices) * len(cases)
    for v in results["voices"]:
        _consistent(v)
    _consistent(results["totals"])
    for key in ("utterances", "right", "false_accepts", "false_rejects", "wake_missed"):
        assert results["totals"][key] == sum(v[key] for v in results["voices"])
    for u in utterances:
        if u["kind"] == Kind.COMMAND:  # only a failed command is given a cause
            assert (u["cause"] is None) == (u["verdict"] == OK_VERDICTS[Kind.COMMAND]), u
        else:
            assert u["cause"] is None, u
        if u["kind"] == Kind.UNKNOWN:
            assert u["intent"] is None, u
        if u["kind"] == Kind.NO_WAKE:
            assert u["runs"] == 0, u
        if u["transcript"] and u["intent"] not in LOCAL_INTENTS:
            assert u["hub_intents"] == [u["intent"]], u  # local intents never reach the hub
    totals = results["totals"]
    print(render_markdown(results))
    assert totals["right"] >= MIN_RIGHT_COMMANDS
    assert totals["false_accepts"] <= MAX_FALSE_ACCEPTS
    assert totals["wake_spoken"] - totals["wake_missed"] >= MIN_WAKE_DETECTED
    assert totals["no_action_without_wake"]

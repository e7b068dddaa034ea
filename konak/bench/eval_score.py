"""How the recognition evaluation judges what the daemon did with each utterance."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from konak.bench.eval_corpus import SLOT_LISTS, Case, Kind
from konak.bench.stats import percentiles_ms
from konak.daemon.events import Event
from konak.daemon.intent import Recognized

LIGHT_WORDS: Final = frozenset({"light", "lights", "lamp"})
# Verdicts: right / wrong / missed (commands), rejected / accepted (unknown speech),
# silent / woke / accepted (no wake word). ``accepted`` and ``wrong`` are false accepts.
OK_VERDICTS: Final = {Kind.COMMAND: "right", Kind.UNKNOWN: "rejected", Kind.NO_WAKE: "silent"}
# Why a command was not recognised, in the order they are checked.
CAUSES: Final = {
    "no_wake": "wake word not detected",
    "no_speech": "no speech found after the wake word",
    "cut_start": "command cut at the start (the words heard begin inside the command)",
    "cut_end": "command cut at the end (the words heard stop inside the command: an early "
    "endpoint, or the search dropped the last words)",
    "empty": "empty transcript (the grammar search found nothing)",
    "right_words_rejected": "right words, rejected by the phone-loop score (stt.min_score)",
    "wrong_words_rejected": "wrong words, rejected by the phone-loop score (stt.min_score)",
    "wrong_words": "wrong words accepted (wrong or no intent)",
}


@dataclass
class Heard:
    """What the daemon made of one utterance, and the verdict."""

    voice: str
    kind: str
    text: str
    expected_intent: str | None
    expected_slots: dict[str, Any]
    runs: int = 0
    wake_score: float | None = None
    endpoint: str | None = None  # "end", "quick" (a whole command and a short pause), ...
    command_seconds: float | None = None
    transcript: str | None = None  # what the turn accepted ("" rejected, None no STT)
    candidate: str | None = None  # the grammar's hypothesis, wake words left out
    score: float | None = None  # the rejection score (stt.min_score decides on it)
    intent: str | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    hub_intents: list[str | None] = field(default_factory=list)  # what reached the hub port
    latency_ms: float | None = None  # endpoint found -> transcript
    seconds: float = 0.0  # wall time of the whole run
    verdict: str = ""
    cause: str | None = None


def _words(text: str) -> list[str]:
    return [w.strip(",.?!") for w in text.lower().split() if w.strip(",.?!")]


def _targets(slots: dict[str, Any]) -> dict[str, Any]:
    """``slots`` with the area a light's name stands for: the kitchen light is the light
    in the kitchen (hassil gives ``name`` for one wording and ``area`` for the other)."""
    name = slots.get("name")
    if isinstance(name, str) and " " in name:
        area, last = name.rsplit(" ", 1)
        if last in LIGHT_WORDS and area in SLOT_LISTS["area"]:
            return {"area": area, **slots}
    return slots


def _matches(case: Case, intent: str | None, slots: dict[str, Any]) -> bool:
    targets = _targets(slots)
    return intent == case.intent and all(targets.get(k) == v for k, v in case.slots.items())


def _cut_at_start(expected: list[str], candidate: list[str]) -> bool:
    """Whether the words heard begin inside the command (its first words are missing)."""
    if not candidate:
        return False
    first = difflib.SequenceMatcher(a=expected, b=candidate, autojunk=False).get_matching_blocks()[
        0
    ]
    return first.size > 0 and first.b == 0 and first.a > 0


def judge(heard: Heard, case: Case, recognize: Callable[[str], Recognized | None]) -> None:
    """Set ``heard.verdict`` and, for a command that failed, ``heard.cause``."""
    if case.kind is Kind.UNKNOWN:
        heard.verdict = "accepted" if heard.intent else "rejected"
        return
    if case.kind is Kind.NO_WAKE:
        heard.verdict = "accepted" if heard.intent else "woke" if heard.runs else "silent"
        return
    if _matches(case, heard.intent, heard.slots):
        heard.verdict = "right"
        return
    heard.verdict = "wrong" if heard.intent else "missed"
    expected, candidate = _words(case.text), _words(heard.candidate or "")
    if not heard.runs:
        heard.cause = "no_wake"
    elif heard.error == "no_speech":
        heard.cause = "no_speech"
    elif _cut_at_start(expected, candidate):
        heard.cause = "cut_start"
    elif 0 < len(candidate) < len(expected) and expected[: len(candidate)] == candidate:
        heard.cause = "cut_end"
    elif heard.transcript:
        heard.cause = "wrong_words"
    elif not candidate:
        heard.cause = "empty"
    else:
        got = recognize(heard.candidate or "")
        right = got is not None and _matches(case, got.name, dict(got.slots))
        heard.cause = "right_words_rejected" if right else "wrong_words_rejected"


def read_events(heard: Heard, events: Sequence[Event]) -> None:
    """Fill ``heard`` from the first run's events (a second run is only counted)."""
    turns = [e.turn_id for e in events if e.type == "run-start"]
    heard.runs = len(turns)
    if not turns:
        return
    at: dict[str, float] = {}
    for e in (e for e in events if e.turn_id == turns[0]):
        if e.type == "wake-end":
            heard.wake_score = round(float(e.data["score"]), 3)
        elif e.type == "vad-end":
            quick = e.data.get("quick") and e.data.get("endpoint") == "end"
            heard.endpoint = "quick" if quick else e.data.get("endpoint")
            heard.command_seconds = e.data.get("command_seconds")
            at["vad"] = e.at
        elif e.type == "stt-end" and "error" not in e.data:
            heard.transcript = e.data.get("text", "")
            at["stt"] = e.at
        elif e.type == "intent-end" and "error" not in e.data:
            heard.intent = e.data.get("intent")
            heard.slots = dict(e.data.get("slots") or {})
        elif e.type == "error":
            heard.error = e.data["code"]
    if "vad" in at and "stt" in at:
        heard.latency_ms = round((at["stt"] - at["vad"]) * 1000, 1)


def summarize(heard: Sequence[Heard]) -> dict[str, Any]:
    """Counts, rates, failure causes and latency percentiles of some utterances."""
    verdicts: dict[str, dict[str, int]] = {k.value: {} for k in Kind}
    causes = dict.fromkeys(CAUSES, 0)
    for h in heard:
        verdicts[h.kind][h.verdict] = verdicts[h.kind].get(h.verdict, 0) + 1
        if h.cause is not None:
            causes[h.cause] += 1
    command, unknown, no_wake = (verdicts[k.value] for k in Kind)
    commands = sum(command.values())
    wake_spoken = [h for h in heard if h.kind != Kind.NO_WAKE]
    latencies = [h.latency_ms / 1000 for h in heard if h.latency_ms is not None]
    return {
        "utterances": len(heard),
        "commands": commands,
        "right": command.get("right", 0),
        "right_percent": round(100 * command.get("right", 0) / commands, 1) if commands else None,
        "wrong": command.get("wrong", 0),
        "missed": command.get("missed", 0),
        "unknown": sum(unknown.values()),
        "unknown_rejected": unknown.get("rejected", 0),
        "unknown_accepted": unknown.get("accepted", 0),
        "no_wake": sum(no_wake.values()),
        "no_wake_silent": no_wake.get("silent", 0),
        "no_wake_woke": no_wake.get("woke", 0),
        "no_wake_accepted": no_wake.get("accepted", 0),
        "false_accepts": command.get("wrong", 0)
        + unknown.get("accepted", 0)
        + no_wake.get("accepted", 0),
        "false_rejects": command.get("missed", 0),
        "no_action_without_wake": no_wake.get("accepted", 0) == 0,
        "wake_missed": sum(1 for h in wake_spoken if not h.runs),
        "wake_spoken": len(wake_spoken),
        "quick_endpoints": sum(1 for h in heard if h.endpoint == "quick"),
        "causes": causes,
        "endpoint_to_transcript": percentiles_ms(latencies),
    }

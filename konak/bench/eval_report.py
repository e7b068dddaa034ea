"""The markdown page of a recognition evaluation (``eval.md``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

CAUSE_COLUMNS: Final = {
    "no_wake": "wake missed",
    "no_speech": "no speech",
    "cut_start": "cut at the start",
    "cut_end": "cut at the end",
    "empty": "empty transcript",
    "right_words_rejected": "right words rejected",
    "wrong_words_rejected": "wrong words rejected",
    "wrong_words": "wrong words accepted",
}


def _ms(lat: dict[str, Any], key: str) -> str:
    value = lat.get(key)
    return "" if value is None else f"{value:.0f}"


def _settings(section: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in section.items())


def _voice_row(name: str, s: dict[str, Any]) -> str:
    lat = s["endpoint_to_transcript"]
    percent = "" if s["right_percent"] is None else f" ({s['right_percent']:.1f} %)"
    quiet = "yes" if s["no_action_without_wake"] else "**no**"
    return (
        f"| {name} | {s['utterances']} | {s['right']} of {s['commands']}{percent} "
        f"| {s['false_accepts']} | {s['false_rejects']} "
        f"| {quiet} ({s['no_wake_silent']} of {s['no_wake']} silent) "
        f"| {s['wake_missed']} of {s['wake_spoken']} | {_ms(lat, 'p50_ms')} "
        f"| {_ms(lat, 'p95_ms')} |"
    )


def _per_voice(results: dict[str, Any]) -> list[str]:
    rows = [
        "| voice | utterances | right intent | false accepts | false rejects "
        "| no action without wake | wake word missed | endpoint -> transcript p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in results["voices"]:
        rows.append(_voice_row(f"`{v['voice']}` {v['description']}".rstrip(), v))
    rows.append(_voice_row("**total**", results["totals"]))
    return rows


def _causes(results: dict[str, Any]) -> list[str]:
    rows = [
        "| voice | " + " | ".join(CAUSE_COLUMNS.values()) + " | quick endpoints (all runs) |",
        "|---|" + "---|" * (len(CAUSE_COLUMNS) + 1),
    ]
    for name, s in [(f"`{v['voice']}`", v) for v in results["voices"]] + [
        ("**total**", results["totals"])
    ]:
        causes = " | ".join(str(s["causes"][c]) for c in CAUSE_COLUMNS)
        rows.append(f"| {name} | {causes} | {s.get('quick_endpoints', '')} |")
    rows += [
        "",
        *(f"- *{CAUSE_COLUMNS[k]}*: {text}." for k, text in results["causes"].items()),
        "- *quick endpoints*: runs ended by the grammar-aware endpoint (the partial result was "
        "a whole command, then a short pause), of any kind of utterance.",
    ]
    return rows


def _quiet(results: dict[str, Any]) -> list[str]:
    rows = [
        "| voice | unknown speech rejected | unknown speech given an intent "
        "| no wake word: silent | woke, no intent | woke, intent |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in [(f"`{v['voice']}`", v) for v in results["voices"]] + [
        ("**total**", results["totals"])
    ]:
        rows.append(
            f"| {name} | {s['unknown_rejected']} of {s['unknown']} | {s['unknown_accepted']} "
            f"| {s['no_wake_silent']} of {s['no_wake']} | {s['no_wake_woke']} "
            f"| {s['no_wake_accepted']} |"
        )
    return rows


def _heard(u: dict[str, Any]) -> str:
    if not u["runs"]:
        return "(no wake word)"
    if u["transcript"]:
        return repr(u["transcript"])
    return f"rejected {u['candidate']!r}" if u["candidate"] else "nothing"


def _false_accepts(utterances: Sequence[dict[str, Any]]) -> list[str]:
    bad = [u for u in utterances if u["verdict"] in ("wrong", "accepted")]
    if not bad:
        return ["None."]
    return [
        f"- `{u['voice']}` {u['kind']}: {u['text']!r} -> {_heard(u)} -> "
        f"{u['intent']} {u['slots']}"
        + (
            f" (expected {u['expected_intent']} {u['expected_slots']})"
            if u["kind"] == "command"
            else ""
        )
        for u in bad
    ]


def _commands(utterances: Sequence[dict[str, Any]], voices: int) -> list[str]:
    right: dict[str, list[str]] = {}
    expected: dict[str, str] = {}
    for u in utterances:
        if u["kind"] != "command":
            continue
        right.setdefault(u["text"], [])
        expected[u["text"]] = f"{u['expected_intent']} {u['expected_slots'] or ''}".rstrip()
        if u["verdict"] == "right":
            right[u["text"]].append(u["voice"])
    rows = ["| command | expected | right with |", "|---|---|---|"]
    for text in sorted(right, key=lambda t: (len(right[t]), t)):
        rows.append(f"| hey jarvis, {text} | {expected[text]} | {len(right[text])} of {voices} |")
    return rows


def render_markdown(results: dict[str, Any]) -> str:
    """The evaluation as a markdown page."""
    m, st, corpus = results["machine"], results["settings"], results["corpus"]
    voices = len(results["voices"])
    lines = [
        f"# Konak recognition evaluation ({results['started_at']})",
        "",
        f"{corpus['command']} in-grammar commands, {corpus['unknown']} out-of-grammar "
        f"utterances after the wake word and {corpus['no_wake']} utterances without it, each "
        f"spoken by {voices} espeak-ng voices (not the project's piper voice) with 1 s of "
        "silence before and 1.5 s after, and run through the daemon's own turn "
        "(`konak.daemon.service.Daemon` over the file; engines loaded once). Commands follow "
        '"hey jarvis," in one breath. Written by `make eval` '
        "(`python -m konak.bench.eval`).",
        "",
        f"Daemon: {', '.join(st['wake_words'])} (threshold {st['wake_threshold']}); "
        f"stt {_settings(st['stt'])}; vad {_settings(st['vad'])}; intents "
        f"{', '.join(st['intents'])}; names {', '.join(st['slot_lists']['name'])}; areas "
        f"{', '.join(st['slot_lists']['area'])}.",
        "",
        f"Revision {results.get('revision') or 'unknown'}. Machine: {m['cpu']}, "
        f"{m['cores']} cores, {m['memory_gib']} GiB, Python "
        f"{m['python']}; load average at start {m['load_average']}.",
        "",
        "## Per voice",
        "",
        "*Right intent*: in-grammar commands given the expected intent and key slots. *False "
        "accepts*: an intent for out-of-grammar speech or speech without the wake word, or a "
        "wrong intent for a command. *False rejects*: commands given no intent (rejected, or "
        "the wake word missed). *Endpoint -> transcript*: from the endpoint found by the audio "
        "loop (`vad-end`) to the transcript (`stt-end`); "
        + (
            "the files were played at a microphone's pace (`--realtime`)."
            if st.get("realtime")
            else "the files were read as fast as the daemon took them, not at a microphone's "
            "pace (`--realtime`), so the decoder may still have had a backlog at the endpoint."
        ),
        "",
        *_per_voice(results),
        "",
        "## Why commands were not recognised",
        "",
        *_causes(results),
        "",
        "## Speech that must do nothing",
        "",
        *_quiet(results),
        "",
        "## False accepts",
        "",
        *_false_accepts(results["utterances"]),
        "",
        "## Commands, by how many voices got them right",
        "",
        *_commands(results["utterances"], voices),
        "",
        f"Total evaluation time: {results['duration_seconds']} s.",
    ]
    return "\n".join(lines) + "\n"

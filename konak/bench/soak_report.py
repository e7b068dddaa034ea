"""The soak's figures (bench/soak.json), its verdict and its markdown page (bench/soak.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from konak.bench.soak_audio import STALL_SECONDS
from konak.bench.stats import percentiles_ms

if TYPE_CHECKING:
    from konak.bench.soak import Tracker
    from konak.bench.soak_audio import LoopingSource
    from konak.daemon.capture import CaptureStats

RSS_AFTER_TURNS: Final = 10
SERIES_EVERY_TURNS: Final = 10
MISSED_LISTED: Final = 20  # lines without a turn, listed by time


def slope_per_100_turns(samples: Sequence[tuple[int, float]]) -> float | None:
    """Least-squares MB per 100 turns over (turns ended, RSS MB); None below 2 points."""
    if len({n for n, _ in samples}) < 2:
        return None
    turns = np.array([n for n, _ in samples], np.float64)
    rss = np.array([mb for _, mb in samples], np.float64)
    return round(float(np.polyfit(turns, rss, 1)[0]) * 100, 2)


def failures(report: dict[str, Any]) -> list[str]:
    """Why the soak failed (empty: it passed)."""
    out = []
    dropped = report["audio"]["dropped_chunks"]
    if dropped:
        out.append(f"{dropped} audio chunks dropped")
    if report["turns"]["without_run_end"]:
        out.append(f"{report['turns']['without_run_end']} turns without run-end")
    if not report["turns"]["started"]:
        out.append("no turn started")
    if report["daemon_stopped_early"]:
        out.append("the daemon stopped before the soak ended")
    return out


def _rss(rss: dict[str, Any], turns_ended: int) -> dict[str, Any]:
    after, end, start = rss["after_10_turns_mb"], rss["end_mb"], rss["after_start_mb"]
    later = [(n, mb) for n, mb in rss["samples"] if n >= RSS_AFTER_TURNS]
    return {
        "after_start_mb": start,
        "after_10_turns_mb": after,
        "end_mb": end,
        "turns_at_end": turns_ended,
        "drift_mb": None if after is None else round(end - after, 1),
        "drift_from_start_mb": round(end - start, 1),
        "slope_mb_per_100_turns": slope_per_100_turns(later),
        "series": [[n, mb] for n, mb in later if n % SERIES_EVERY_TURNS == 0],
    }


def build(
    *,
    source: LoopingSource,
    tracker: Tracker,
    open_turns: Sequence[str],
    capture: CaptureStats,
    rss: dict[str, Any],
    **facts: Any,
) -> dict[str, Any]:
    """The soak's report: ``facts`` (machine, times, CPU, sink, outbox, log) as given,
    then audio, turns, lines and RSS from what was observed; ``failures`` and ``passed``."""
    still_open = set(open_turns)
    done = {tid: t for tid, t in tracker.turns.items() if tid not in still_open}
    ordered = sorted(done.values(), key=lambda t: t.started_at)
    durations = [t.ended_at - t.started_at for t in ordered if t.ended_at is not None]
    half = len(durations) // 2
    played = source.clips_played
    heard = {t.clip for t in tracker.turns.values() if t.clip is not None}
    lines = []
    for index, clip in enumerate(source.clips):
        mine = [t for t in done.values() if t.clip is not None and source.playlist[t.clip] == index]
        outcomes = Counter(t.outcome for t in mine)
        lines.append(
            {
                "line": clip.line.label,
                "expected": clip.line.expected,
                "played": sum(1 for n in range(played) if source.playlist[n] == index),
                "turns": len(mine),
                "as_expected": outcomes[clip.line.expected],
                "outcomes": dict(outcomes.most_common()),
            }
        )
    report: dict[str, Any] = {
        **facts,
        "audio": {
            "script_seconds": round(source.script_seconds, 2),
            "clip_seconds": round(source.clips[0].samples.size / 16_000, 2),
            "clips_played": played,
            "chunks": capture.chunks,
            "dropped_chunks": capture.dropped_chunks,
            "overflow_bursts": capture.overflow_bursts,
            "source_overflows": capture.source_overflows,
            "max_pacing_lag_ms": round(source.max_lag_seconds * 1000, 1),
            "reader_stalls": source.stalls,
        },
        "turns": {
            "started": len(tracker.turns),
            "ended": len(done),
            "without_run_end": len(still_open),
            "open_turn_ids": sorted(still_open)[:10],
            "closed_by_shutdown": sum(
                1 for tid in still_open if tracker.turns[tid].ended_at is not None
            ),
            "run_end_without_start": tracker.run_end_without_start,
            "duplicate_run_end": tracker.duplicate_run_end,
            "before_the_first_line": sum(1 for t in tracker.turns.values() if t.clip is None),
            "lines_without_turn": played - len(heard),
            "lines_without_turn_first": [
                {"line": source.line_of(n).label, "at_seconds": round(source.clip_seconds_in(n), 2)}
                for n in range(played)
                if n not in heard
            ][:MISSED_LISTED],
            "by_outcome": dict(Counter(t.outcome for t in ordered).most_common()),
            "duration": percentiles_ms(durations),
            "duration_p50_first_half_ms": percentiles_ms(durations[:half]).get("p50_ms"),
            "duration_p50_second_half_ms": percentiles_ms(durations[half:]).get("p50_ms"),
        },
        "lines": lines,
        "rss": _rss(rss, len(done)),
    }
    report["failures"] = failures(report)
    report["passed"] = not report["failures"]
    return report


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} MB"


def _signed(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{value:+.1f} {unit}"


def render_markdown(report: dict[str, Any]) -> str:
    """The report as a markdown page: verdict, figures, outcomes by line."""
    m, a, t, r = report["machine"], report["audio"], report["turns"], report["rss"]
    d = t["duration"]
    verdict = (
        "**Passed**: no audio chunk dropped, every turn ended with `run-end`."
        if report["passed"]
        else "**FAILED**: " + "; ".join(report["failures"]) + "."
    )
    lines = [
        f"# Konak soak ({a['script_seconds'] / 60:.1f} min of paced speech, "
        f"{report['started_at']})",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, "
        f"Python {m['python']}; load average at start {m['load_average']}. One line every "
        f"{a['clip_seconds']} s, played in real time into the daemon (wake, VAD, STT, intent) "
        "-> real broker -> real hub with konak-home -> the daemon's reply (TTS to a null sink).",
        "",
        verdict,
        "",
        "| figure | value |",
        "|---|---|",
        f"| lines played | {a['clips_played']} ({a['chunks']} chunks of 80 ms; "
        f"max pacing lag {a['max_pacing_lag_ms']} ms) |",
        f"| reader stalls over {STALL_SECONDS * 1000:.0f} ms | {a['reader_stalls']} (the "
        "thread reading the microphone could not run; a sound card would overflow) |",
        f"| dropped audio chunks | {a['dropped_chunks']} ({a['overflow_bursts']} bursts) |",
        f"| turns started / ended | {t['started']} / {t['ended']} |",
        f"| turns without run-end | {t['without_run_end']} |",
        f"| lines without a turn | {t['lines_without_turn']} |",
        "| turns by outcome | " + ", ".join(f"{k} {v}" for k, v in t["by_outcome"].items()) + " |",
        f"| turn run-start -> run-end | p50 {d.get('p50_ms', '')} ms, p95 "
        f"{d.get('p95_ms', '')} ms, max {d.get('max_ms', '')} ms (p50 first half "
        f"{t['duration_p50_first_half_ms']} ms, second half "
        f"{t['duration_p50_second_half_ms']} ms) |",
        f"| RSS after start | {_mb(r['after_start_mb'])} |",
        f"| RSS after {RSS_AFTER_TURNS} turns | {_mb(r['after_10_turns_mb'])} |",
        f"| RSS at the end ({r['turns_at_end']} turns) | {_mb(r['end_mb'])} |",
        f"| RSS drift after {RSS_AFTER_TURNS} turns | {_signed(r['drift_mb'], 'MB')}, "
        f"{_signed(r['slope_mb_per_100_turns'], 'MB per 100 turns')} (least squares) |",
        f"| CPU | {report['cpu_percent_of_one_core']} % of one core |",
        f"| outbox at the end | {report['outbox']['queue_depth']} queued, "
        f"{report['outbox']['dead_letters']} dead letters, "
        f"{report['outbox']['expired_intents']} expired |",
        f"| daemon log | {report['log']['errors']} errors, {report['log']['warnings']} warnings |",
        "",
        "## Outcomes by line",
        "",
        "| line | expected | played | turns | as expected | outcomes |",
        "|---|---|---|---|---|---|",
    ]
    for line in report["lines"]:
        outcomes = ", ".join(f"{k} {v}" for k, v in line["outcomes"].items())
        lines.append(
            f"| {line['line']} | {line['expected']} | {line['played']} | {line['turns']} "
            f"| {line['as_expected']} | {outcomes} |"
        )
    missed = t["lines_without_turn_first"]
    if missed:
        lines += ["", "Lines without a turn (seconds after the first line):", ""]
        lines += [f"- {m['at_seconds']} s: {m['line']}" for m in missed]
    if report["log"]["first"]:
        lines += ["", "First log lines at warning or above:", ""]
        lines += [f"    {text}" for text in report["log"]["first"]]
    lines += ["", f"Total soak time: {report['seconds']} s."]
    return "\n".join(lines) + "\n"

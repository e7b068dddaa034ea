from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from konak.bench.soak import Tracker
from konak.bench.soak_audio import Clip, Line, LoopingSource, SoakError
from konak.bench.soak_report import build, render_markdown, slope_per_100_turns
from konak.bench.stats import machine
from konak.daemon.audio import CHUNK_SAMPLES
from konak.daemon.capture import CaptureStats
from konak.daemon.events import Event


def _clip(value: int, chunks: int = 2, expected: str = "ok") -> Clip:
    return Clip(Line(f"line {value}", expected), np.full(chunks * CHUNK_SAMPLES, value, np.int16))


def _source() -> LoopingSource:
    return LoopingSource([_clip(1), _clip(2)], 0.5, warmup_seconds=0)


def _facts() -> dict[str, object]:
    return {
        "started_at": "2026-01-01T00:00:00Z",
        "machine": machine(),
        "cpu_percent_of_one_core": 30.0,
        "sink": {"plays": 0, "seconds": 0.0},
        "outbox": {"queue_depth": 0, "dead_letters": 0, "expired_intents": 0},
        "log": {"warnings": 0, "errors": 0, "first": []},
        "daemon_stopped_early": False,
        "seconds": 1.0,
    }


def _rss() -> dict[str, object]:
    return {"after_start_mb": 400.0, "after_10_turns_mb": None, "end_mb": 410.0, "samples": []}


def test_the_looping_source_plays_whole_clips_in_turn_then_silence_in_real_time() -> None:
    source = _source()
    assert source.playlist == [0, 1, 0]  # a fourth 0.16 s clip would pass 0.5 s
    chunks = source.chunks()
    started = time.monotonic()
    got = [next(chunks) for _ in range(7)]
    took = time.monotonic() - started
    source.close()
    assert [int(c.samples[0]) for c in got] == [1, 1, 2, 2, 1, 1, 0]
    assert [c.start_seconds for c in got] == pytest.approx([i * 0.08 for i in range(7)])
    assert 7 * 0.08 - 0.01 <= took < 7 * 0.08 + 0.5  # paced: never early, late only if starved
    assert source.script_done.is_set()
    assert source.clips_played == 3
    assert source.line_of(2) == source.clips[0].line
    assert list(chunks) == []


def test_the_clip_playing_at_a_moment_is_the_last_one_started_before_it() -> None:
    source = _source()
    chunks = source.chunks()
    before = time.monotonic()
    next(chunks)
    assert source.clip_at(before - 1) is None
    assert source.clip_at(time.monotonic()) == 0
    for _ in range(2):
        next(chunks)
    assert source.clip_at(time.monotonic()) == 1
    source.close()


def test_clips_that_are_not_whole_chunks_are_refused() -> None:
    clip = Clip(Line("x", "ok"), np.zeros(CHUNK_SAMPLES + 1, np.int16))
    with pytest.raises(SoakError, match="whole chunks"):
        LoopingSource([clip], 10)


def test_a_turn_is_counted_by_its_error_else_the_hubs_outcome() -> None:
    tracker = Tracker(_source())
    for turn_id, middle in (
        ("a", Event("hub-end", "a", {"outcome": "ok"}, at=2)),
        ("b", Event("error", "b", {"code": "no_speech"}, at=2)),
        ("c", Event("stt-end", "c", {"text": ""}, at=2)),
    ):
        assert not tracker.add(Event("run-start", turn_id, at=1))
        assert not tracker.add(middle)
        assert tracker.add(Event("run-end", turn_id, at=3))
    assert [t.outcome for t in tracker.turns.values()] == ["ok", "no_speech", "no_outcome"]
    assert tracker.ended == 3
    assert tracker.open_turns() == []


def test_a_second_run_end_or_one_without_run_start_is_counted_apart() -> None:
    tracker = Tracker(_source())
    tracker.add(Event("run-start", "a", at=1))
    tracker.add(Event("run-end", "a", at=2))
    assert not tracker.add(Event("run-end", "a", at=3))
    assert not tracker.add(Event("run-end", "stranger", at=3))
    assert (tracker.ended, tracker.duplicate_run_end, tracker.run_end_without_start) == (1, 1, 1)


def test_the_rss_slope_is_megabytes_per_hundred_turns() -> None:
    assert slope_per_100_turns([(10, 400.0), (20, 401.0), (30, 402.0)]) == pytest.approx(10.0)
    assert slope_per_100_turns([(10, 400.0)]) is None


def test_a_dropped_chunk_or_a_turn_without_run_end_fails_the_soak() -> None:
    tracker = Tracker(_source())
    tracker.add(Event("run-start", "done", at=1))
    tracker.add(Event("hub-end", "done", {"outcome": "ok"}, at=2))
    tracker.add(Event("run-end", "done", at=3))
    tracker.add(Event("run-start", "hung", at=4))
    report = build(
        source=tracker.source,
        tracker=tracker,
        open_turns=tracker.open_turns(),
        capture=CaptureStats(chunks=100, dropped_chunks=2, overflow_bursts=1, source_overflows=0),
        rss=_rss(),
        **_facts(),
    )
    assert report["failures"] == ["2 audio chunks dropped", "1 turns without run-end"]
    assert not report["passed"]
    assert report["turns"]["started"] == 2
    assert report["turns"]["ended"] == 1
    assert report["turns"]["by_outcome"] == {"ok": 1}
    assert report["rss"]["drift_from_start_mb"] == pytest.approx(10.0)
    text = render_markdown(report)
    assert "**FAILED**: 2 audio chunks dropped; 1 turns without run-end." in text
    assert "| turns started / ended | 2 / 1 |" in text
    assert "| RSS after 10 turns | n/a |" in text


@pytest.mark.integration
def test_a_short_soak_ends_every_turn_drops_no_audio_and_writes_its_report(
    installed_models: Path, tmp_path: Path
) -> None:
    from konak.cli import build_parser

    args = build_parser().parse_args(
        ["bench", "--soak", "--minutes", "0.6", "--out", str(tmp_path)]
    )
    status = args.handler(args)
    report = json.loads((tmp_path / "soak.json").read_text())
    assert status == 0, report["failures"]
    turns, audio, rss = report["turns"], report["audio"], report["rss"]
    assert audio["clips_played"] == 5
    assert audio["dropped_chunks"] == 0
    assert audio["chunks"] >= audio["script_seconds"] / 0.08
    assert turns["started"] == turns["ended"] >= 3
    assert turns["without_run_end"] == 0
    assert sum(turns["by_outcome"].values()) == turns["ended"]
    in_lines = sum(line["turns"] for line in report["lines"])
    assert in_lines + turns["before_the_first_line"] == turns["ended"]
    assert rss["after_start_mb"] > 0
    assert rss["end_mb"] > 0
    assert rss["turns_at_end"] == turns["ended"]
    assert "**Passed**" in (tmp_path / "soak.md").read_text()
    assert len(list((tmp_path / ".cache").glob("soak-*.wav"))) == 5


def test_a_line_that_started_no_turn_is_listed_with_when_it_was_played() -> None:
    source = _source()
    chunks = source.chunks()
    next(chunks)
    tracker = Tracker(source)
    tracker.add(Event("run-start", "a", at=time.monotonic()))
    tracker.add(Event("run-end", "a", at=time.monotonic()))
    for _ in range(2):
        next(chunks)
    source.close()
    report = build(
        source=source,
        tracker=tracker,
        open_turns=[],
        capture=CaptureStats(chunks=3, dropped_chunks=0, overflow_bursts=0, source_overflows=0),
        rss=_rss(),
        **_facts(),
    )
    assert report["passed"]
    assert report["turns"]["lines_without_turn"] == 1
    assert report["turns"]["lines_without_turn_first"] == [
        {"line": "Hey Jarvis, line 2", "at_seconds": pytest.approx(0.16, abs=0.01)}
    ]
    assert report["lines"][0]["turns"] == 1
    assert "- 0.16 s: Hey Jarvis, line 2" in render_markdown(report)

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from konak.bench import footprint, rig, turns
from konak.bench.report import render_markdown
from konak.bench.rig import PacedMic, true_speech_end
from konak.bench.stats import machine
from konak.daemon.audio import CHUNK_SAMPLES


def test_the_true_end_of_speech_is_just_after_the_last_loud_sample() -> None:
    samples = np.zeros(1000, np.int16)
    samples[100:400] = 5000
    samples[700] = 50  # below the speech level: room noise
    assert true_speech_end(samples) == 400
    assert true_speech_end(np.zeros(10, np.int16)) == 0


def test_the_paced_microphone_plays_fed_audio_in_order_then_silence() -> None:
    mic = PacedMic()
    fed = np.arange(1, 2 * CHUNK_SAMPLES + 1, dtype=np.int16)
    mic.feed(fed)
    chunks = mic.chunks()
    got = [next(chunks) for _ in range(3)]
    mic.close()
    assert np.array_equal(np.concatenate([c.samples for c in got[:2]]), fed)
    assert not got[2].samples.any()
    assert [c.start_seconds for c in got] == pytest.approx([0.0, 0.08, 0.16])
    assert list(chunks) == []


def test_a_summary_counts_failed_turns_and_leaves_them_out_of_the_percentiles() -> None:
    done = {
        "text": "a",
        "voice": "en-gb+m3@140",
        "intent": "HassTurnOn",
        "expected": "HassTurnOn",
        **dict.fromkeys(turns.LATENCIES, 0.5),
    }
    failed = {"text": "b", "voice": "piper", "error": "no_wake"}
    summary = turns.summarize([done, failed], 400.0, 410.0, 12.0)
    assert summary["turns"] == 2
    assert summary["completed"] == 1
    assert summary["failed"] == [{"text": "b", "voice": "piper", "error": "no_wake"}]
    assert summary["accuracy_by_voice"] == {
        "en-gb+m3@140": {"turns": 1, "right_intent": 1},
        "piper": {"turns": 1, "right_intent": 0},
    }
    assert all(summary["latency"][name]["n"] == 1 for name in turns.LATENCIES)
    assert summary["latency"][turns.LATENCIES[0]]["p50_ms"] == pytest.approx(500)


def test_the_report_has_stage_turn_and_footprint_tables() -> None:
    results = {
        "machine": machine(),
        "mode": "quick",
        "started_at": "2026-01-01T00:00:00Z",
        "duration_seconds": 1.0,
        "stages": {
            "wake_us_per_80ms_chunk": {"1_word": 1500.0, "5_words": 2500.0},
            "wake_fifth_word": "again",
            "vad_us_per_32ms_frame": 110.0,
            "stt_grammar": {"rtf": 1.1},
            "stt_open": {"rtf": 0.3},
            "intent_ms": 5.0,
            "tts": {"rtf": 0.1, "time_to_first_audio_ms": 190.0},
        },
        "turns": turns.summarize(
            [{"text": "a", "intent": None, **dict.fromkeys(turns.LATENCIES, 1.0)}], 1, 2, 3
        ),
        "idle": {
            "audio_seconds": 10,
            "daemon": {"cpu_percent_of_one_core": 4.0, "rss_mb": 400},
            "bare_wake_loop": {"cpu_percent_of_one_core": 2.0, "rss_mb": 90},
            "cpu_ratio_daemon_to_bare": 2.0,
        },
        "cold_start": {"start_to_ready_seconds": 3.0, "rss_at_ready_mb": 420, "exit_status": 0},
    }
    text = render_markdown(results)
    assert f"{results['machine']['cores']} cores" in text
    assert "| wake word, 5 words | 2500 us per 80 ms chunk (again) |" in text
    assert "| true speech end to first reply audio | 1 | 1000.0 | 1000.0 | 1000.0 |" in text
    assert "1 of 1 turns completed (0 failed, 1 without an intent)" in text
    assert "| daemon / bare CPU ratio | 2.0 |" in text
    assert "| RSS at READY=1 | 420 MB |" in text


def test_turns_must_be_at_least_one(tmp_path: Path) -> None:
    with pytest.raises(turns.TurnBenchError, match="at least 1"):
        turns.run_turns(0, tmp_path)


@pytest.mark.integration
def test_a_tiny_turn_run_completes_every_turn_with_ordered_latencies(
    installed_models: Path, tmp_path: Path
) -> None:
    result = turns.run_in_child(2, tmp_path / "cache")
    assert result["turns"] == 2
    assert result["completed"] == 2
    assert result["failed"] == []
    assert result["misheard"] == 0
    lat = {name: result["latency"][name] for name in turns.LATENCIES}
    assert all(v["n"] == 2 for v in lat.values())
    ack, transcript, at_hub, reply, from_true_end = (lat[n]["max_ms"] for n in turns.LATENCIES)
    assert 0 <= ack < at_hub < reply < from_true_end
    assert 0 <= transcript < at_hub  # the intent is sent after the transcript
    assert result["rss_after_turns_mb"] > 0
    # Every command in every voice was made once (piper's beside espeak-ng's).
    commands = len(rig.TURN_COMMANDS)
    assert len(list((tmp_path / "cache").glob("*.wav"))) == commands
    espeak_voices = len(rig.TURN_VOICES) - 1
    assert len(list((tmp_path / "cache" / "espeak").glob("*.wav"))) == commands * espeak_voices
    assert result["accuracy_by_voice"] == {"piper": {"turns": 2, "right_intent": 2}}


@pytest.mark.integration
def test_a_cold_started_daemon_reports_ready_and_stops_cleanly(installed_models: Path) -> None:
    result = footprint.cold_start()
    assert result["start_to_ready_seconds"] > 0
    assert result["rss_at_ready_mb"] > 0
    assert result["exit_status"] == 0


@pytest.mark.integration
def test_the_idle_daemon_and_the_bare_wake_loop_are_both_measured(
    installed_models: Path,
) -> None:
    result = footprint.idle_cost(2)
    assert result["daemon"]["cpu_percent_of_one_core"] > 0
    assert result["bare_wake_loop"]["cpu_percent_of_one_core"] > 0
    assert result["daemon"]["rss_mb"] > result["bare_wake_loop"]["rss_mb"]
    assert result["cpu_ratio_daemon_to_bare"] > 0

from __future__ import annotations

import argparse
import asyncio

import pytest

from konak.bench import hub_scale
from konak.bench.cli import register
from konak.bench.report import render_markdown
from konak.bench.stats import machine, percentiles_ms


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser)
    return parser.parse_args(argv)


def test_percentiles_are_reported_in_milliseconds() -> None:
    figures = percentiles_ms([0.001 * i for i in range(1, 101)])
    assert figures["n"] == 100
    assert figures["p50_ms"] == pytest.approx(50.5)
    assert figures["max_ms"] == pytest.approx(100)
    assert percentiles_ms([]) == {"n": 0}


def test_the_machine_description_names_cpu_and_cores() -> None:
    facts = machine()
    assert facts["cores"] >= 1
    assert facts["cpu"]


@pytest.mark.parametrize(
    "argv",
    [
        ("--rates", "fast"),
        ("--rates", "0,10"),
        ("--devices", "0"),
        ("--skip", "daemon"),
        ("--turns", "0"),
        ("--idle-seconds", "x"),
    ],
)
def test_bad_arguments_are_refused(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_bad_scale_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        hub_scale.HubScaleSettings(devices=0)


def test_the_markdown_report_has_the_machine_and_each_section() -> None:
    results = {
        "machine": machine(),
        "mode": "quick",
        "started_at": "2026-01-01T00:00:00Z",
        "duration_seconds": 1.0,
        "models": [
            {
                "model_id": "m",
                "role": "vad",
                "load_seconds": 0.1,
                "steady": 150.0,
                "steady_unit": "us/32ms frame",
                "first_audio_seconds": None,
                "peak_rss_mb": 80.0,
            },
            {"model_id": "x", "role": "tts", "error": "not installed"},
        ],
        "hub_scale": [
            {
                "devices": 10,
                "offered_intents_per_second": 5.0,
                "sustained_intents_per_second": 5.0,
                "intent_to_reply": {"p50_ms": 3.0, "p99_ms": 9.0, "max_ms": 10.0},
                "late": 2,
                "expired": 1,
                "lost": 0,
                "duplicated": 0,
            },
        ],
    }
    text = render_markdown(results)
    assert f"{results['machine']['cores']} cores" in text
    assert "| m | vad | 0.100 | 150 us/32ms frame |" in text
    assert "error: not installed" in text
    assert "| 10 | 5.0 | 5.0 | 3.0 | 9.0 | 10.0 | 2 | 1 | 0 | 0 |" in text


@pytest.mark.integration
def test_a_small_hub_scale_run_loses_and_duplicates_nothing() -> None:
    figures = asyncio.run(
        hub_scale.run(
            hub_scale.HubScaleSettings(devices=20, rate_per_second=20, duration_seconds=1)
        )
    )
    assert figures["intents_sent"] == 20
    assert (figures["lost"], figures["late"], figures["expired"]) == (0, 0, 0)
    assert figures["duplicated"] == 0
    assert figures["outcomes"] == {"ok": 20}
    assert figures["hub_exit_status"] == 0


def test_a_reply_after_the_last_send_is_counted_and_one_after_its_expiry_is_late() -> None:
    tally = hub_scale.Tally(expiry_seconds=30.0)
    for n, turn in enumerate(("in-time", "late", "refused", "lost", "twice", "resent")):
        tally.sent(turn, float(n))
    tally.received("in-time", "ok", 25.0)  # long after the last send, within its expiry
    tally.received("late", "ok", 61.0)  # 60 s after it was sent: its expiry had passed
    tally.received("refused", "expired", 40.0)
    tally.received("twice", "ok", 5.0)
    tally.received("twice", "ok", 6.0)  # ran twice
    tally.received("resent", "ok", 7.0)
    tally.received("resent", "ok", 8.0, repeat=True)  # sent again: the same reply, once run

    figures = tally.figures()

    assert {k: figures[k] for k in ("answered_in_time", "late", "expired", "lost")} == {
        "answered_in_time": 3,
        "late": 1,
        "expired": 1,
        "lost": 1,
    }
    assert (figures["intents_sent"], figures["replies_received"]) == (6, 5)
    assert (figures["duplicated"], figures["repeated"]) == (1, 1)

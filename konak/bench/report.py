"""The markdown table of a benchmark run."""

from __future__ import annotations

from typing import Any


def _models_table(models: list[dict[str, Any]]) -> list[str]:
    rows = [
        "| model | role | load s | steady cost | time to first audio s | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for m in models:
        if m.get("error"):
            rows.append(f"| {m['model_id']} | {m['role']} | error: {m['error']} | | | |")
            continue
        unit = m["steady_unit"]
        steady = (
            f"{m['steady']:.0f} {unit}" if unit.startswith("us") else f"{m['steady']:.3f} {unit}"
        )
        first = m.get("first_audio_seconds")
        rows.append(
            f"| {m['model_id']} | {m['role']} | {m['load_seconds']:.3f} | {steady} "
            f"| {'' if first is None else f'{first:.3f}'} | {m['peak_rss_mb']:.0f} |"
        )
    return rows


def _scale_table(steps: list[dict[str, Any]]) -> list[str]:
    rows = [
        "| devices | offered /s | sustained /s | p50 ms | p99 ms | max ms | lost | duplicated |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        lat = s["intent_to_reply"]
        rows.append(
            f"| {s['devices']} | {s['offered_intents_per_second']} "
            f"| {s['sustained_intents_per_second']} | {lat.get('p50_ms', '')} "
            f"| {lat.get('p99_ms', '')} | {lat.get('max_ms', '')} | {s['lost']} "
            f"| {s['duplicated']} |"
        )
    return rows


def render_markdown(results: dict[str, Any]) -> str:
    """Results as a markdown page: machine, then one table per section."""
    m = results["machine"]
    lines = [
        f"# Konak benchmark ({results['mode']} mode, {results['started_at']})",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, "
        f"Python {m['python']}; load average at start {m['load_average']}. Medians unless "
        "noted; shared machines are noisy, so compare ratios rather than absolute figures.",
        "",
    ]
    if "models" in results:
        lines += ["## Models (each in its own process)", "", *_models_table(results["models"]), ""]
    if "hub_scale" in results:
        lines += [
            "## Hub scale (simulated devices -> real broker -> hub -> konak-home -> device)",
            "",
            *_scale_table(results["hub_scale"]),
            "",
        ]
    lines.append(f"Total benchmark time: {results['duration_seconds']} s.")
    return "\n".join(lines) + "\n"

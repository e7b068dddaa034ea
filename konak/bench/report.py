"""The markdown table of a benchmark run."""

from __future__ import annotations

from typing import Any

from konak.bench import embedding


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
        "| devices | offered /s | sustained /s | p50 ms | p99 ms | max ms | late | expired "
        "| lost | duplicated |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        lat = s["intent_to_reply"]
        rows.append(
            f"| {s['devices']} | {s['offered_intents_per_second']} "
            f"| {s['sustained_intents_per_second']} | {lat.get('p50_ms', '')} "
            f"| {lat.get('p99_ms', '')} | {lat.get('max_ms', '')} | {s.get('late', '')} "
            f"| {s.get('expired', '')} | {s['lost']} | {s['duplicated']} |"
        )
    return rows


def _stages_table(st: dict[str, Any]) -> list[str]:
    wake = st["wake_us_per_80ms_chunk"]
    tts = st["tts"]
    return [
        "| stage | cost |",
        "|---|---|",
        f"| wake word, 1 word | {wake['1_word']:.0f} us per 80 ms chunk |",
        f"| wake word, 5 words | {wake['5_words']:.0f} us per 80 ms chunk "
        f"({st['wake_fifth_word']}) |",
        f"| VAD (silero) | {st['vad_us_per_32ms_frame']:.0f} us per 32 ms frame |",
        "| STT grammar mode (with the phone loop for rejection) | "
        f"RTF {st['stt_grammar']['rtf']} |",
        f"| STT open mode | RTF {st['stt_open']['rtf']} |",
        f"| intent recognition (hassil) | {st['intent_ms']} ms |",
        f"| TTS (piper) | RTF {tts['rtf']}, first audio after {tts['time_to_first_audio_ms']} ms |",
    ]


def _turns_table(t: dict[str, Any]) -> list[str]:
    rows = ["| latency | n | p50 ms | p95 ms | max ms |", "|---|---|---|---|---|"]
    for name, lat in t["latency"].items():
        label = name.replace("_", " ")
        rows.append(
            f"| {label} | {lat['n']} | {lat.get('p50_ms', '')} | {lat.get('p95_ms', '')} "
            f"| {lat.get('max_ms', '')} |"
        )
    rows += [
        "",
        f"{t['completed']} of {t['turns']} turns completed ({len(t['failed'])} failed, "
        f"{t['misheard']} without an intent) in {t['seconds']} s.",
    ]
    if t.get("accuracy_by_voice"):
        rows += ["", "| voice | turns | right intent |", "|---|---|---|"]
        for voice, tally in t["accuracy_by_voice"].items():
            share = 100 * tally["right_intent"] / tally["turns"] if tally["turns"] else 0.0
            rows.append(f"| {voice} | {tally['turns']} | {tally['right_intent']} ({share:.0f} %) |")
    return rows


def _footprint(results: dict[str, Any]) -> list[str]:
    rows = ["| figure | value |", "|---|---|"]
    if "idle" in results:
        idle = results["idle"]
        d, b = idle["daemon"], idle["bare_wake_loop"]
        rows += [
            f"| idle daemon on {idle['audio_seconds']} s of non-speech | "
            f"{d['cpu_percent_of_one_core']} % of one core, RSS {d['rss_mb']} MB |",
            f"| bare openWakeWord loop, same audio | "
            f"{b['cpu_percent_of_one_core']} % of one core, RSS {b['rss_mb']} MB |",
            f"| daemon / bare CPU ratio | {idle['cpu_ratio_daemon_to_bare']} |",
        ]
    if "turns" in results:
        t = results["turns"]
        rows += [
            f"| RSS after start (in-process daemon) | {t['rss_after_start_mb']} MB |",
            f"| RSS after {t['turns']} turns | {t['rss_after_turns_mb']} MB |",
        ]
    if "cold_start" in results:
        c = results["cold_start"]
        rows += [
            f"| `konak daemon run` exec -> READY=1 | {c['start_to_ready_seconds']} s |",
            f"| RSS at READY=1 | {c['rss_at_ready_mb']} MB |",
        ]
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
    if "stages" in results:
        lines += [
            "## Per stage (the daemon's engine classes)",
            "",
            *_stages_table(results["stages"]),
            "",
        ]
    if "turns" in results:
        lines += [
            "## Turn latency (spoken commands paced in real time: daemon -> broker -> hub -> "
            "konak-home -> daemon)",
            "",
            *_turns_table(results["turns"]),
            "",
        ]
    if {"idle", "turns", "cold_start"} & results.keys():
        lines += ["## Daemon footprint", "", *_footprint(results), ""]
    if "models" in results:
        lines += ["## Models (each in its own process)", "", *_models_table(results["models"]), ""]
    if "embedding" in results:
        lines += embedding.markdown(results["embedding"])
    if "hub_scale" in results:
        lines += [
            "## Hub scale (simulated devices -> real broker -> hub -> konak-home -> device)",
            "",
            *_scale_table(results["hub_scale"]),
            "",
        ]
    if "vectors" in results:
        from konak.bench.vectors import table

        lines += [
            "## Knowledge store (sqlite-vec and pgvector)",
            "",
            *table(results["vectors"]),
            "",
        ]
    lines.append(f"Total benchmark time: {results['duration_seconds']} s.")
    return "\n".join(lines) + "\n"

"""``konak bench``: run the benchmarks and write bench/results.json and bench/results.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from konak.bench import hub_scale
from konak.bench.report import render_markdown
from konak.bench.stats import machine

logger = logging.getLogger(__name__)

QUICK_SCALE = hub_scale.HubScaleSettings(devices=200, rate_per_second=50, duration_seconds=5)
FULL_RATES = (100.0, 200.0, 400.0)
SECTIONS = ("stages", "turns", "idle", "cold-start", "models", "embedding", "hub", "vectors")


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``bench`` options."""
    parser.add_argument("--quick", action="store_true", help="a smoke run (under 2 minutes)")
    parser.add_argument("--devices", type=_positive_int, default=2000, help="simulated devices")
    parser.add_argument(
        "--rates",
        type=_rates,
        default=FULL_RATES,
        help="comma-separated intents/s for the hub scale steps (default 100,200,400)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each step")
    parser.add_argument("--out", type=Path, default=Path("bench"), help="output directory")
    parser.add_argument("--turns", type=_positive_int, help="spoken turns (default 100, quick 3)")
    parser.add_argument(
        "--idle-seconds", type=_positive_int, help="idle audio (default 60, quick 10)"
    )
    parser.add_argument(
        "--skip", action="append", default=[], choices=SECTIONS, help="skip a section"
    )
    parser.add_argument(
        "--soak",
        action="store_true",
        help="instead of the benchmarks: paced speech into the daemon for --minutes; "
        "writes soak.json and soak.md (fails on dropped audio or a turn without run-end)",
    )
    parser.add_argument(
        "--minutes", type=_positive_float, default=30.0, help="soak audio (default 30)"
    )
    parser.set_defaults(handler=run)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates must be positive")
    return rates


def _models(quick: bool) -> list[dict[str, Any]]:
    from konak.edge_models.bench import bench_models
    from konak.edge_models.manifest import load_packaged
    from konak.edge_models.settings import ModelSettings
    from konak.edge_models.store import ModelStore

    settings = ModelSettings.resolve(
        models_dir=None, accept_licenses=(), environ=os.environ, config={}
    )
    names = ["oww-hey-jarvis", "silero-vad-v6", "piper-en-us-joe-medium"] if quick else ["default"]
    results = bench_models(
        ModelStore(settings.models_dir), load_packaged(), names, repeats=1 if quick else 3
    )
    return [r.to_dict() for r in results]


def run(args: argparse.Namespace) -> int:
    """Run the selected sections and write the results (or run the soak)."""
    if args.soak:
        from konak.bench.soak import main as soak

        return soak(args.minutes * 60, args.out)
    from konak.bench.footprint import cold_start, idle_cost
    from konak.bench.stages import run_stages
    from konak.bench.turns import run_in_child

    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine(),
        "mode": "quick" if args.quick else "full",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    cache = args.out / ".cache"
    if "stages" not in args.skip:
        print("stages: wake, VAD, STT, intent, TTS through the daemon's engines ...", flush=True)
        results["stages"] = run_stages(cache, quick=args.quick)
    if "turns" not in args.skip:
        turns = args.turns or (3 if args.quick else 100)
        print(f"turns: {turns} spoken turns, daemon -> broker -> hub -> daemon ...", flush=True)
        results["turns"] = run_in_child(turns, cache)
    if "idle" not in args.skip:
        seconds = args.idle_seconds or (10 if args.quick else 60)
        print(f"idle: {seconds} s of non-speech, daemon and bare wake loop ...", flush=True)
        results["idle"] = idle_cost(seconds)
    if "cold-start" not in args.skip:
        print("cold start: `konak daemon run` to READY=1 ...", flush=True)
        results["cold_start"] = cold_start()
    if "models" not in args.skip:
        print("models: load time, steady cost, RTF, peak RSS per model ...", flush=True)
        results["models"] = _models(args.quick)
    if "embedding" not in args.skip:
        from konak.bench import embedding

        print("embedding: sentences/s on one core, float and int8 ...", flush=True)
        results["embedding"] = embedding.run(quick=args.quick)
    if "hub" not in args.skip:
        steps = (
            [QUICK_SCALE]
            if args.quick
            else [
                hub_scale.HubScaleSettings(args.devices, rate, args.seconds) for rate in args.rates
            ]
        )
        results["hub_scale"] = []
        for step in steps:
            print(
                f"hub scale: {step.devices} devices, {step.rate_per_second:g} intents/s "
                f"for {step.duration_seconds:g} s ...",
                flush=True,
            )
            figures = asyncio.run(hub_scale.run(step))
            results["hub_scale"].append({"settings": asdict(step), **figures})
    if "vectors" not in args.skip:
        from konak.bench import vectors

        results["vectors"] = vectors.run(quick=args.quick)
    results["duration_seconds"] = round(time.perf_counter() - started, 1)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = render_markdown(results)
    (out / "results.md").write_text(markdown)
    print(markdown)
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 0

"""Per-model benchmarks with the real engines: load time, steady cost, RTF, peak RSS.

Each model runs in its own child process so its peak RSS is its own. Medians throughout.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from konak.edge_models import speech
from konak.edge_models.errors import ENGINE_UNAVAILABLE, ModelError
from konak.edge_models.manifest import Manifest, Model
from konak.edge_models.store import ModelStore
from konak.errors import KonakError

if TYPE_CHECKING:
    from konak.daemon.audio import Samples

logger = logging.getLogger(__name__)

STEADY_ITERATIONS: Final = 200
VOICE: Final = "piper-en-us-joe-medium"  # speaks the test sentences for the STT models
CHILD_TIMEOUT_SECONDS: Final = 600.0
TTS_TEXT: Final = (
    "The weather tomorrow will be mostly sunny. Expect a light breeze in the "
    "afternoon. The kitchen light is now on."
)


@dataclass(frozen=True)
class BenchResult:
    """Medians for one model."""

    model_id: str
    role: str
    engine: str
    load_seconds: float = 0.0
    steady: float = 0.0
    steady_unit: str = ""
    first_audio_seconds: float | None = None
    peak_rss_mb: float = 0.0
    note: str = ""
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _peak_rss_mb() -> float:
    """This process's peak RSS. ``ru_maxrss`` survives fork+exec on Linux (a child of a big
    parent reports the parent's peak), so read the address space's own high-water mark."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _test_audio(seconds: float) -> Samples:
    """Deterministic noise-and-tone audio for the wake/VAD front ends."""
    import numpy as np

    from konak.daemon.audio import RATE_HZ

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    audio = 3000 * np.sin(2 * np.pi * 220 * t) + rng.normal(0, 300, t.shape)
    return audio.astype(np.int16)


def _per_unit_us(fn: Callable[[int], object], iterations: int = STEADY_ITERATIONS) -> float:
    times = []
    for i in range(iterations):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def _bench_wake(store: ModelStore, model: Model, repeats: int) -> BenchResult:
    import numpy as np

    from konak.daemon.audio import CHUNK_SAMPLES, RATE_HZ
    from konak.daemon.wake import (
        CONTEXT_SAMPLES,
        EMBEDDING_MODEL,
        MEL_WINDOW_FRAMES,
        MELSPEC_MODEL,
        OpenWakeWord,
    )

    mel, emb = store.path(MELSPEC_MODEL), store.path(EMBEDDING_MODEL)
    words = {model.id: store.path(model.id)} if model.role == "wake-word" else {}
    load = _median_time(lambda: OpenWakeWord(mel, emb, words), repeats)
    wake = OpenWakeWord(mel, emb, words)
    audio = _test_audio(STEADY_ITERATIONS * CHUNK_SAMPLES / RATE_HZ)
    chunks = audio.reshape(-1, CHUNK_SAMPLES)
    for chunk in chunks[:20]:
        wake.process(chunk)  # warm up and fill the buffers

    def with_context(i: int) -> Any:
        return np.concatenate([chunks[i - 1][-CONTEXT_SAMPLES:], chunks[i]]).astype(np.float32)

    if model.id == MELSPEC_MODEL:
        steady, note = _per_unit_us(lambda i: wake.melspec(with_context(i))), "mel stage only"
    elif model.id == EMBEDDING_MODEL:
        mel_frames = np.vstack([wake.melspec(with_context(i)) for i in range(1, 11)])
        window = mel_frames[-MEL_WINDOW_FRAMES:]
        steady, note = _per_unit_us(lambda i: wake.embed(window)), "embedding stage only"
    else:
        steady, note = _per_unit_us(lambda i: wake.process(chunks[i])), "mel+embedding+classifier"
    return BenchResult(model.id, model.role, model.engine, load, steady, "us/80ms chunk", note=note)


def _bench_vad(store: ModelStore, model: Model, repeats: int) -> BenchResult:
    from konak.daemon.audio import RATE_HZ
    from konak.daemon.vad import FRAME_SAMPLES, SileroVad

    path = store.path(model.id)
    load = _median_time(lambda: SileroVad(path), repeats)
    vad = SileroVad(path)
    frames = _test_audio(STEADY_ITERATIONS * FRAME_SAMPLES / RATE_HZ).reshape(-1, FRAME_SAMPLES)
    steady = _per_unit_us(lambda i: vad(frames[i]))
    return BenchResult(model.id, model.role, model.engine, load, steady, "us/32ms frame")


def _bench_embedding(store: ModelStore, model: Model, repeats: int) -> BenchResult:
    from konak.bench.embedding import SHORT
    from konak.hub.knowledge.embedder import Embedder

    path = store.path(model.id)
    load = _median_time(lambda: Embedder.load(path, model_id=model.id), repeats)
    embedder = Embedder.load(path, model_id=model.id)
    steady = _per_unit_us(lambda i: embedder.embed([SHORT]))
    return BenchResult(
        model.id, model.role, model.engine, load, steady, "us/short sentence", note="1 thread"
    )


def _utterances(store: ModelStore) -> tuple[list[Samples], float]:
    from konak.daemon.audio import RATE_HZ

    pcm = speech.speak(speech.piper_voice(store.path(VOICE)), speech.TEST_SENTENCES)
    return pcm, sum(len(p) for p in pcm) / RATE_HZ


def _bench_stt(store: ModelStore, model: Model, repeats: int) -> BenchResult:
    from konak.daemon.stt import PocketSphinxStt, SttEngine, VoskStt

    engine: Callable[[Path], SttEngine] = VoskStt
    directory = store.path(model.id)
    try:
        utterances, seconds = _utterances(store)
        note = f"{len(utterances)} piper sentences, {seconds:.1f} s"
    except ModelError:
        utterances, seconds = [_test_audio(5.0)], 5.0
        note = "tone+noise (piper voice not installed)"
    if model.engine == "pocketsphinx":
        engine = PocketSphinxStt  # the open language model: no grammar given
        note += ", full LM"
    load = _median_time(lambda: engine(directory), repeats)
    stt = engine(directory)
    rtf = _median_time(lambda: [stt.transcribe(u) for u in utterances], repeats) / seconds
    return BenchResult(model.id, model.role, model.engine, load, rtf, "RTF", note=note)


def _bench_tts(store: ModelStore, model: Model, repeats: int) -> BenchResult:
    path = store.path(model.id)
    load = _median_time(lambda: speech.piper_voice(path), repeats)
    voice = speech.piper_voice(path)
    voice.synthesize("Warm up.")
    rtfs, firsts = [], []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        seconds = 0.0
        first: float | None = None
        for samples, rate in voice.sentences(TTS_TEXT):
            first = first if first is not None else time.perf_counter() - t0
            seconds += len(samples) / rate
        rtfs.append((time.perf_counter() - t0) / seconds)
        firsts.append(first or 0.0)
    return BenchResult(
        model.id,
        model.role,
        model.engine,
        load,
        statistics.median(rtfs),
        "RTF",
        first_audio_seconds=statistics.median(firsts),
        note=f"{speech.PIPER_THREADS} threads",
    )


def bench_in_process(store: ModelStore, model: Model, repeats: int) -> BenchResult:
    """Benchmark one model in this process (the child side of :func:`bench_models`)."""
    if model.role in ("wake-features", "wake-word"):
        result = _bench_wake(store, model, repeats)
    elif model.role == "vad":
        result = _bench_vad(store, model, repeats)
    elif model.role == "stt":
        result = _bench_stt(store, model, repeats)
    elif model.role == "embedding":
        result = _bench_embedding(store, model, repeats)
    else:
        result = _bench_tts(store, model, repeats)
    return BenchResult(**{**result.to_dict(), "peak_rss_mb": _peak_rss_mb()})


def bench_models(
    store: ModelStore,
    manifest: Manifest,
    names: Sequence[str],
    *,
    repeats: int = 3,
    manifest_path: Path | None = None,
) -> list[BenchResult]:
    """Benchmark each model named (sets expand) in its own child process."""
    results = []
    for model in manifest.resolve(names):
        command = [
            sys.executable,
            "-m",
            "konak.edge_models.bench",
            "--models-dir",
            str(store.root),
            "--repeats",
            str(repeats),
            model.id,
        ]
        if manifest_path:
            command += ["--manifest", str(manifest_path)]
        logger.info("benchmarking %s", model.id)
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            command,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_SECONDS,
            check=False,
        )
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines:
            results.append(BenchResult(**json.loads(lines[-1])))
            continue
        err = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        results.append(BenchResult(model.id, model.role, model.engine, error=err))
    return results


def render_table(results: Sequence[BenchResult]) -> str:
    """A fixed-width table of results."""
    head = (
        f"{'model':28} {'role':13} {'load s':>7} {'steady':>9} {'unit':14} "
        f"{'1st audio s':>11} {'peak RSS MB':>11}  note"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        if r.error:
            lines.append(f"{r.model_id:28} {r.role:13} error: {r.error}")
            continue
        first = f"{r.first_audio_seconds:.3f}" if r.first_audio_seconds is not None else "-"
        steady = f"{r.steady:.1f}" if r.steady_unit.startswith("us") else f"{r.steady:.3f}"
        lines.append(
            f"{r.model_id:28} {r.role:13} {r.load_seconds:7.3f} {steady:>9} "
            f"{r.steady_unit:14} {first:>11} {r.peak_rss_mb:11.0f}  {r.note}"
        )
    return "\n".join(lines)


def _child(argv: Sequence[str] | None = None) -> int:
    from konak.edge_models.overlay import effective_manifest

    parser = argparse.ArgumentParser(prog="konak.edge_models.bench")
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--manifest", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("model")
    args = parser.parse_args(argv)
    store = ModelStore(args.models_dir)
    try:
        model = effective_manifest(store, args.manifest).model(args.model)
        result = bench_in_process(store, model, args.repeats)
    except KonakError as exc:
        print(f"{exc.message} [{exc.code}]", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"{exc} [{ENGINE_UNAVAILABLE}]", file=sys.stderr)
        return 1
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(_child())

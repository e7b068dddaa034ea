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
from typing import Any, Final

from konak.edge_models import speech
from konak.edge_models.errors import ENGINE_UNAVAILABLE, ModelError
from konak.edge_models.manifest import Manifest, Model
from konak.edge_models.store import ModelStore

logger = logging.getLogger(__name__)

WAKE_CHUNK_SAMPLES: Final = 1280  # 80 ms at 16 kHz
MEL_CONTEXT_SAMPLES: Final = 480  # 3 extra 10 ms hops so each chunk yields 8 mel frames
VAD_FRAME_SAMPLES: Final = 512  # 32 ms at 16 kHz
VAD_CONTEXT_SAMPLES: Final = 64
STEADY_ITERATIONS: Final = 200
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


def _test_audio(seconds: float) -> Any:
    """Deterministic noise-and-tone audio (int16-scaled float32) for the wake/VAD front ends."""
    import numpy as np

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * speech.STT_RATE_HZ)) / speech.STT_RATE_HZ
    audio = 3000 * np.sin(2 * np.pi * 220 * t) + rng.normal(0, 300, t.shape)
    return audio.astype(np.float32)


class WakePipeline:
    """openWakeWord's three ONNX stages run directly: melspectrogram -> embedding -> classifier."""

    def __init__(self, mel_path: Path, emb_path: Path, classifier_path: Path | None) -> None:
        import numpy as np

        self._np = np
        self.mel = speech.ort_session(mel_path, threads=1)
        self.emb = speech.ort_session(emb_path, threads=1)
        self.cls = speech.ort_session(classifier_path, threads=1) if classifier_path else None
        self.mel_buffer = np.ones((76, 32), dtype=np.float32)
        self.emb_buffer = np.zeros((16, 96), dtype=np.float32)
        self.tail = np.zeros(MEL_CONTEXT_SAMPLES, dtype=np.float32)

    def mel_frames(self, chunk: Any) -> Any:
        """Mel frames for one 80 ms chunk (scaled the way openWakeWord does)."""
        audio = self._np.concatenate([self.tail, chunk])[None, :]
        self.tail = chunk[-MEL_CONTEXT_SAMPLES:]
        out = self.mel.run(None, {self.mel.get_inputs()[0].name: audio})[0]
        return out.squeeze() / 10.0 + 2.0

    def embed(self) -> Any:
        """One embedding of the last 76 mel frames."""
        window = self.mel_buffer[None, :, :, None]
        return self.emb.run(None, {self.emb.get_inputs()[0].name: window})[0].reshape(96)

    def process(self, chunk: Any) -> float:
        """Score one 80 ms chunk."""
        frames = self.mel_frames(chunk)
        self.mel_buffer = self._np.concatenate([self.mel_buffer, frames])[-76:]
        self.emb_buffer = self._np.concatenate([self.emb_buffer, self.embed()[None, :]])[-16:]
        if self.cls is None:
            return 0.0
        feed = {self.cls.get_inputs()[0].name: self.emb_buffer[None, :, :]}
        return float(self.cls.run(None, feed)[0].reshape(-1)[0])


def _per_unit_us(fn: Callable[[int], object], iterations: int = STEADY_ITERATIONS) -> float:
    times = []
    for i in range(iterations):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def _bench_wake(store: ModelStore, model: Model, repeats: int) -> BenchResult:
    mel, emb = store.path("oww-melspectrogram"), store.path("oww-embedding")
    classifier = store.path(model.id) if model.role == "wake-word" else None
    load = _median_time(lambda: WakePipeline(mel, emb, classifier), repeats)
    pipe = WakePipeline(mel, emb, classifier)
    audio = _test_audio(STEADY_ITERATIONS * WAKE_CHUNK_SAMPLES / speech.STT_RATE_HZ)
    chunks = audio.reshape(-1, WAKE_CHUNK_SAMPLES)
    for chunk in chunks[:20]:
        pipe.process(chunk)  # warm up and fill the buffers
    if model.id == "oww-melspectrogram":
        steady, note = _per_unit_us(lambda i: pipe.mel_frames(chunks[i])), "mel stage only"
    elif model.id == "oww-embedding":
        steady, note = _per_unit_us(lambda i: pipe.embed()), "embedding stage only"
    else:
        steady, note = _per_unit_us(lambda i: pipe.process(chunks[i])), "mel+embedding+classifier"
    return BenchResult(model.id, model.role, model.engine, load, steady, "us/80ms chunk", note=note)


def _bench_vad(store: ModelStore, model: Model, repeats: int) -> BenchResult:
    import numpy as np

    path = store.path(model.id)
    load = _median_time(lambda: speech.ort_session(path, threads=1), repeats)
    session = speech.ort_session(path, threads=1)
    audio = _test_audio(STEADY_ITERATIONS * VAD_FRAME_SAMPLES / speech.STT_RATE_HZ) / 32768.0
    frames = audio.reshape(-1, VAD_FRAME_SAMPLES)
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros(VAD_CONTEXT_SAMPLES, dtype=np.float32)
    sr = np.array(speech.STT_RATE_HZ, dtype=np.int64)

    def step(i: int) -> None:
        nonlocal state, context
        x = np.concatenate([context, frames[i]])[None, :]
        _, state = session.run(None, {"input": x, "state": state, "sr": sr})
        context = frames[i][-VAD_CONTEXT_SAMPLES:]

    return BenchResult(
        model.id, model.role, model.engine, load, _per_unit_us(step), "us/32ms frame"
    )


def _utterances(store: ModelStore) -> tuple[list[Any], float]:
    piper_path = store.path("piper-en-us-joe-medium")
    voice = speech.load_piper(piper_path, piper_path.with_name(piper_path.name + ".json"))
    pcm = speech.speak(voice, speech.TEST_SENTENCES)
    return pcm, sum(len(p) for p in pcm) / speech.STT_RATE_HZ


def _bench_stt(store: ModelStore, model: Model, repeats: int) -> BenchResult:
    directory = store.path(model.id)
    try:
        utterances, seconds = _utterances(store)
        note = f"{len(utterances)} piper sentences, {seconds:.1f} s"
    except ModelError:
        utterances, seconds = [_test_audio(5.0).astype("int16")], 5.0
        note = "tone+noise (piper voice not installed)"
    if model.engine == "pocketsphinx":
        load = _median_time(lambda: speech.pocketsphinx_decoder(directory), repeats)
        decoder = speech.pocketsphinx_decoder(directory)
        run: Callable[[], object] = lambda: [  # noqa: E731
            speech.pocketsphinx_transcribe(decoder, u) for u in utterances
        ]
        note += ", full LM"
    else:
        load = _median_time(lambda: speech.vosk_model(directory), repeats)
        vmodel = speech.vosk_model(directory)
        run = lambda: [speech.vosk_transcribe(vmodel, u) for u in utterances]  # noqa: E731
    rtf = _median_time(run, repeats) / seconds
    return BenchResult(model.id, model.role, model.engine, load, rtf, "RTF", note=note)


def _bench_tts(store: ModelStore, model: Model, repeats: int) -> BenchResult:
    path = store.path(model.id)
    config = path.with_name(path.name + ".json")
    load = _median_time(lambda: speech.load_piper(path, config), repeats)
    voice = speech.load_piper(path, config)
    list(voice.synthesize("Warm up."))
    rtfs, firsts = [], []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        samples = 0
        first: float | None = None
        for chunk in voice.synthesize(TTS_TEXT):
            first = first if first is not None else time.perf_counter() - t0
            samples += len(chunk)
        rtfs.append((time.perf_counter() - t0) / (samples / voice.sample_rate_hz))
        firsts.append(first or 0.0)
    return BenchResult(
        model.id,
        model.role,
        model.engine,
        load,
        statistics.median(rtfs),
        "RTF",
        first_audio_seconds=statistics.median(firsts),
        note="2 threads",
    )


def bench_in_process(store: ModelStore, model: Model, repeats: int) -> BenchResult:
    """Benchmark one model in this process (the child side of :func:`bench_models`)."""
    if model.role in ("wake-features", "wake-word"):
        result = _bench_wake(store, model, repeats)
    elif model.role == "vad":
        result = _bench_vad(store, model, repeats)
    elif model.role == "stt":
        result = _bench_stt(store, model, repeats)
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
    except ModelError as exc:
        print(f"{exc.message} [{exc.code}]", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"{exc} [{ENGINE_UNAVAILABLE}]", file=sys.stderr)
        return 1
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(_child())

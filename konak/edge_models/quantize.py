"""Quantize an installed ONNX model (dynamic int8, float16), measure it, record the choice.

The variants go into the store like any model and into the local overlay manifest with
their own sha256 and size; ``choices.<base>`` records which variant each target should
run and why. Only this machine's target (``cpu``) is measured here; other targets keep
the float model until measured on the device.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from konak.edge_models import speech
from konak.edge_models.errors import ENGINE_UNAVAILABLE, ModelError
from konak.edge_models.manifest import Manifest, Model, Source, VariantChoice
from konak.edge_models.overlay import update_overlay
from konak.edge_models.store import ModelStore

logger = logging.getLogger(__name__)

MAX_WER_INCREASE: Final = 0.02  # absolute word error rate a variant may add (piper)
MAX_OUTPUT_DIFF: Final = 0.05  # max abs difference of scores a variant may add (wake, VAD)
MEASURED_TARGET: Final = "cpu"


@dataclass
class VariantMeasurement:
    """Size, speed and quality of one variant (or of the float model)."""

    model_id: str
    size_bytes: int
    seconds_per_unit: float
    quality: float  # WER for piper, max |score difference| vs float otherwise
    unit: str


@dataclass
class QuantizeReport:
    """What quantize built and chose."""

    base: str
    quality_metric: str
    measurements: list[VariantMeasurement] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    choice: VariantChoice | None = None

    def table(self) -> str:
        """A small table of the measurements and the decision."""
        lines = [f"{'variant':36} {'MB':>7} {'time':>10} {'unit':14} {self.quality_metric:>10}"]
        for m in self.measurements:
            lines.append(
                f"{m.model_id:36} {m.size_bytes / 1e6:7.1f} {m.seconds_per_unit:10.4f} "
                f"{m.unit:14} {m.quality:10.4f}"
            )
        lines += [f"skipped: {why}" for why in self.skipped]
        if self.choice:
            lines.append(f"chosen: {dict(self.choice.per_target)}; {self.choice.reason}")
        return "\n".join(lines)


def _quantize_file(src: Path, dst: Path, mode: str) -> None:
    try:
        import onnx
        from onnxruntime.quantization import (  # type: ignore[import-untyped]
            QuantType,
            quantize_dynamic,
        )
    except ImportError as exc:
        raise ModelError(
            "quantize needs the onnx and onnxruntime packages (konak[dev])", code=ENGINE_UNAVAILABLE
        ) from exc
    if mode == "int8":
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8)
        return
    try:
        from onnxconverter_common import float16  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ModelError(
            "float16 needs onnxconverter-common (konak[dev])", code=ENGINE_UNAVAILABLE
        ) from exc
    with warnings.catch_warnings():  # it warns once per weight clipped to float16's range
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(converted, str(dst))


class NotApplicable(ModelError):
    """A quantization mode that does not apply to this model."""

    code = "not_quantizable"


def _check_loads(path: Path, base: Model, mode: str) -> None:
    from konak.daemon.errors import EngineError
    from konak.daemon.onnx_session import onnx_session

    try:
        onnx_session(path)
    except EngineError as exc:
        first_line = str(exc.__cause__ or exc).splitlines()[0][:300]
        raise NotApplicable(
            f"{base.id}: {mode} does not apply: onnxruntime cannot load the "
            f"converted graph ({first_line})"
        ) from exc


def build_variant(store: ModelStore, base: Model, mode: str) -> Model:
    """Quantize the base model's ONNX file and install the result as ``<base>-<mode>``."""
    onnx_file = next((f for f in base.files if f.path.endswith(".onnx")), None)
    if onnx_file is None or base.entry_path == ".":
        raise ModelError(
            f"{base.id}: not a single ONNX model; nothing to quantize", code="not_quantizable"
        )
    src = store.directory(base.id) / onnx_file.path
    with store.staging_file() as (tmp, fh):
        fh.close()
        _quantize_file(src, tmp, mode)
        _check_loads(tmp, base, mode)
        blob = store.add_blob(tmp, expected=None, origin=f"quantize {mode}")
    files = tuple(
        dataclasses.replace(blob, path=f.path) if f is onnx_file else f for f in base.files
    )
    variant = dataclasses.replace(
        base,
        id=f"{base.id}-{mode}",
        files=files,
        variant_of=base.id,
        quantization="dynamic-int8" if mode == "int8" else "float16",
        description=f"{base.description} ({mode}, built locally by konak models quantize)",
        sources=(Source(kind="derived", base=base.id, method=mode),),
        entry=base.entry,
    )
    store.install(variant, files, f"quantize {mode} of {base.id}")
    return variant


def _measure_piper(store: ModelStore, model: Model) -> tuple[float, float]:
    """(seconds per second of audio, WER of pocketsphinx re-transcription)."""
    from konak.daemon.audio import RATE_HZ
    from konak.daemon.stt import PocketSphinxStt

    voice = speech.piper_voice(store.path(model.id))
    voice.synthesize("Warm up.")
    t0 = time.perf_counter()
    pcm = speech.speak(voice, speech.TEST_SENTENCES)
    rtf = (time.perf_counter() - t0) / (sum(len(p) for p in pcm) / RATE_HZ)
    stt = speech.load_engine(
        "pocketsphinx-en-us", PocketSphinxStt, store.path("pocketsphinx-en-us")
    )
    hyps = [stt.transcribe(p).text for p in pcm]
    logger.info("%s re-transcribed: %s", model.id, hyps)
    return rtf, speech.word_error_rate(speech.TEST_SENTENCES, hyps)


def _feeds(session: Any, seed: int) -> dict[str, Any]:
    import numpy as np

    from konak.daemon.audio import RATE_HZ

    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in session.get_inputs():
        if spec.type == "tensor(int64)":
            feeds[spec.name] = np.array(RATE_HZ, dtype=np.int64)
            continue
        shape = [d if isinstance(d, int) else 1 for d in spec.shape]
        if spec.name == "input" and len(shape) == 2:
            shape[1] = 576  # silero: 64 samples of context + a 512-sample frame; mel: any
        feeds[spec.name] = rng.normal(0, 0.3, shape).astype(np.float32)
    return feeds


def _measure_onnx(path: Path, reference: Path) -> tuple[float, float]:
    """(median seconds per run, max |output difference| against the float model)."""
    import numpy as np

    from konak.daemon.onnx_session import onnx_session

    session, ref = onnx_session(path), onnx_session(reference)
    diffs, times = [], []
    for seed in range(30):
        feeds = _feeds(session, seed)
        t0 = time.perf_counter()
        out = session.run(None, feeds)[0]
        times.append(time.perf_counter() - t0)
        diffs.append(float(np.max(np.abs(out - ref.run(None, feeds)[0]))))
    return statistics.median(times), max(diffs)


def _measure(store: ModelStore, model: Model, base: Model) -> VariantMeasurement:
    size = sum(f.size for f in model.files if f.path.endswith(".onnx"))
    if model.engine == "piper":
        rtf, wer = _measure_piper(store, model)
        return VariantMeasurement(model.id, size, rtf, wer, "RTF")
    seconds, diff = _measure_onnx(store.path(model.id), store.path(base.id))
    return VariantMeasurement(model.id, size, seconds, diff, "s/run")


def decide(
    base: Model, measured: Sequence[VariantMeasurement], metric: str, skipped: Sequence[str] = ()
) -> VariantChoice:
    """Per target: a variant only if it is faster here and loses no more than the tolerance."""
    ref = measured[0]
    tolerance = MAX_WER_INCREASE if metric == "WER" else MAX_OUTPUT_DIFF
    best, reasons = ref, []
    for m in measured[1:]:
        loss = m.quality - ref.quality
        faster = m.seconds_per_unit < ref.seconds_per_unit
        verdict = (
            "kept"
            if faster and loss <= tolerance and m.seconds_per_unit < best.seconds_per_unit
            else "rejected"
        )
        reasons.append(
            f"{m.model_id}: {m.size_bytes / 1e6:.1f} MB vs {ref.size_bytes / 1e6:.1f}, "
            f"{m.unit} {m.seconds_per_unit:.4g} vs {ref.seconds_per_unit:.4g}, "
            f"{metric} {m.quality:.3f} vs {ref.quality:.3f} -> {verdict}"
        )
        if verdict == "kept":
            best = m
    per_target = {t: base.id for t in base.targets}
    per_target[MEASURED_TARGET] = best.model_id
    reason = (
        f"measured on this machine ({MEASURED_TARGET}): "
        + "; ".join(reasons)
        + "".join(f"; {why}" for why in skipped)
        + f". Other targets keep {base.id} until measured there."
    )
    values = {
        f"{m.model_id}.{k}": float(v)
        for m in measured
        for k, v in (
            ("bytes", m.size_bytes),
            ("time", m.seconds_per_unit),
            (metric.lower(), m.quality),
        )
    }
    return VariantChoice(base=base.id, per_target=per_target, reason=reason, measurements=values)


def quantize_model(
    store: ModelStore,
    manifest: Manifest,
    model_id: str,
    *,
    modes: Sequence[str] = ("int8", "float16"),
) -> QuantizeReport:
    """Build the variants, measure them against the float model, write the overlay."""
    base = manifest.model(model_id)
    if base.variant_of:
        raise ModelError(
            f"{model_id}: is already a variant of {base.variant_of}", code="not_quantizable"
        )
    store.directory(base.id)  # clear not_installed error before any work
    metric = "WER" if base.engine == "piper" else "max|diff|"
    report = QuantizeReport(base=base.id, quality_metric=metric)
    variants = []
    with store.lock():
        for mode in modes:
            try:
                variants.append(build_variant(store, base, mode))
            except NotApplicable as exc:
                logger.warning("%s", exc.message)
                report.skipped.append(exc.message)
    report.measurements = [_measure(store, m, base) for m in (base, *variants)]
    for m in report.measurements:
        logger.info("%s: %s", m.model_id, m)
    report.choice = decide(base, report.measurements, metric, report.skipped)
    update_overlay(store, variants, report.choice)
    return report

"""Thin helpers that run the real engines (piper, pocketsphinx, vosk, onnxruntime) on models.

Heavy imports stay inside the functions so importing this module costs nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from konak.edge_models.errors import ENGINE_UNAVAILABLE, ModelError

STT_RATE_HZ: Final = 16_000
TEST_SENTENCES: Final = (
    "Turn on the kitchen light.",
    "What is the weather like tomorrow?",
    "Set a timer for ten minutes.",
    "Play some music in the living room.",
    "Turn off all the lights in the house.",
    "What time is it now?",
)


def _need(module: str, model_id: str) -> ModelError:
    return ModelError(
        f"{model_id}: needs the Python package {module!r} (install konak[device])",
        code=ENGINE_UNAVAILABLE,
    )


def ort_session(path: Path, *, threads: int = 2, arena: bool = True) -> Any:
    """An onnxruntime CPU session with a fixed thread count."""
    try:
        import onnxruntime as ort  # type: ignore[import-untyped]
    except ImportError as exc:
        raise _need("onnxruntime", path.name) from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = arena
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass
class PiperVoiceHandle:
    """A loaded piper voice and its sample rate."""

    voice: Any
    sample_rate_hz: int

    def synthesize(self, text: str) -> Iterator[Any]:
        """One float32 numpy array per sentence."""
        for chunk in self.voice.synthesize(text):
            yield chunk.audio_float_array


def load_piper(onnx_path: Path, config_path: Path, *, threads: int = 2) -> PiperVoiceHandle:
    """Load a piper voice with a thread count (PiperVoice.load has no thread option)."""
    try:
        from piper import PiperVoice
        from piper.config import PiperConfig
    except ImportError as exc:
        raise _need("piper-tts", onnx_path.name) from exc
    config = json.loads(config_path.read_text(encoding="utf-8"))
    voice = PiperVoice(
        session=ort_session(onnx_path, threads=threads), config=PiperConfig.from_dict(config)
    )
    return PiperVoiceHandle(voice=voice, sample_rate_hz=int(config["audio"]["sample_rate"]))


def resample_to_int16(audio: Any, rate_hz: int, target_hz: int = STT_RATE_HZ) -> Any:
    """Linear resampling to ``target_hz`` as int16 PCM (enough for ASR checks)."""
    import numpy as np

    n_out = int(len(audio) * target_hz / rate_hz)
    src_t = np.arange(len(audio)) / rate_hz
    dst_t = np.arange(n_out) / target_hz
    out = np.interp(dst_t, src_t, audio)
    return (np.clip(out, -1.0, 1.0) * 32767).astype(np.int16)


def speak(handle: PiperVoiceHandle, texts: Sequence[str]) -> list[Any]:
    """Synthesize each text into 16 kHz int16 PCM with 0.3 s of silence around it."""
    import numpy as np

    pad = np.zeros(int(0.3 * STT_RATE_HZ), dtype=np.int16)
    out = []
    for text in texts:
        audio = np.concatenate(list(handle.synthesize(text)))
        out.append(np.concatenate([pad, resample_to_int16(audio, handle.sample_rate_hz), pad]))
    return out


def pocketsphinx_decoder(model_dir: Path) -> Any:
    """A pocketsphinx decoder with the full language model (open vocabulary)."""
    try:
        from pocketsphinx import Decoder  # type: ignore[import-untyped]
    except ImportError as exc:
        raise _need("pocketsphinx", model_dir.name) from exc
    return Decoder(
        hmm=str(model_dir / "en-us"),
        lm=str(model_dir / "en-us.lm.bin"),
        dict=str(model_dir / "cmudict-en-us.dict"),
        samprate=STT_RATE_HZ,
        loglevel="FATAL",
    )


def pocketsphinx_transcribe(decoder: Any, pcm: Any) -> str:
    """Decode one utterance of 16 kHz int16 PCM."""
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return str(hyp.hypstr) if hyp is not None else ""


def vosk_model(model_dir: Path) -> Any:
    """A loaded vosk model."""
    try:
        import vosk  # type: ignore[import-untyped]
    except ImportError as exc:
        raise _need("vosk", model_dir.name) from exc
    vosk.SetLogLevel(-1)
    return vosk.Model(str(model_dir))


def vosk_transcribe(model: Any, pcm: Any) -> str:
    """Decode one utterance of 16 kHz int16 PCM, streaming 0.2 s chunks."""
    import vosk

    recognizer = vosk.KaldiRecognizer(model, STT_RATE_HZ)
    data = pcm.tobytes()
    step = int(0.2 * STT_RATE_HZ) * 2
    for i in range(0, len(data), step):
        recognizer.AcceptWaveform(data[i : i + step])
    return str(json.loads(recognizer.FinalResult()).get("text", ""))


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Word error rate over all utterances (Levenshtein on words)."""
    errors = total = 0
    for ref_text, hyp_text in zip(references, hypotheses, strict=True):
        ref, hyp = _words(ref_text), _words(hyp_text)
        row = list(range(len(hyp) + 1))
        for i, r in enumerate(ref, 1):
            prev, row[0] = row[0], i
            for j, h in enumerate(hyp, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
        errors += row[-1]
        total += len(ref)
    return errors / max(total, 1)

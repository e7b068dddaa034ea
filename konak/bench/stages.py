"""Per-stage costs measured through the daemon's own engine classes."""

from __future__ import annotations

import functools
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import numpy as np

from konak.bench.rig import VOICE, Utterance, daemon_settings, models_dir, spoken_commands
from konak.daemon.audio import CHUNK_SAMPLES, RATE_HZ, Samples

logger = logging.getLogger(__name__)

WAKE_WORDS: Final = ("oww-hey-jarvis", "oww-alexa", "oww-hey-mycroft", "oww-hey-rhasspy")
VAD_FRAME_SAMPLES: Final = 512
REPLY: Final = "Okay, the kitchen light is on. Anything else?"


def _median_us(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e6, 1)


def _wake(models: Path, audio: Samples, words: int) -> float:
    from konak.daemon.engines import model_path, word_name
    from konak.daemon.wake import EMBEDDING_MODEL, MELSPEC_MODEL, OpenWakeWord

    paths = {word_name(m): model_path(models, m, m) for m in WAKE_WORDS}
    if words > len(paths):  # the fifth word: a default model loaded again under another name
        paths["hey_jarvis_again"] = paths["hey_jarvis"]
    chosen = dict(list(paths.items())[:words])
    engine = OpenWakeWord(
        model_path(models, MELSPEC_MODEL, "wake"),
        model_path(models, EMBEDDING_MODEL, "wake"),
        chosen,
    )
    chunks = [
        audio[i : i + CHUNK_SAMPLES] for i in range(0, audio.size - CHUNK_SAMPLES, CHUNK_SAMPLES)
    ]
    times = []
    for chunk in chunks:
        start = time.perf_counter()
        engine.process(chunk)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e6, 1)


def _vad(models: Path, audio: Samples) -> float:
    from konak.daemon.engines import model_path
    from konak.daemon.vad import SileroVad

    vad = SileroVad(model_path(models, "silero-vad-v6", "vad"))
    frames = [
        audio[i : i + VAD_FRAME_SAMPLES]
        for i in range(0, audio.size - VAD_FRAME_SAMPLES, VAD_FRAME_SAMPLES)
    ]
    times = []
    for frame in frames:
        start = time.perf_counter()
        vad(frame)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e6, 1)


def _stt_rtf(stt: Any, commands: list[Utterance]) -> dict[str, Any]:
    ratios, heard = [], []
    for u in commands:
        start = time.perf_counter()
        transcript = stt.transcribe(u.samples)
        ratios.append((time.perf_counter() - start) / (u.samples.size / RATE_HZ))
        heard.append(transcript.text)
    return {"rtf": round(statistics.median(ratios), 3), "heard": heard}


def _tts(models: Path, repeats: int) -> dict[str, float]:
    from konak.daemon.engines import model_path
    from konak.daemon.tts import PiperTts

    tts = PiperTts(model_path(models, VOICE, "tts"))
    ratios, firsts = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        first: float | None = None
        seconds = 0.0
        for samples, rate in tts.sentences(REPLY):
            first = first if first is not None else time.perf_counter() - start
            seconds += samples.size / rate
        total = time.perf_counter() - start
        ratios.append(total / seconds)
        firsts.append(first or total)
    return {
        "rtf": round(statistics.median(ratios), 3),
        "time_to_first_audio_ms": round(statistics.median(firsts) * 1000, 1),
    }


def run_stages(cache: Path, *, quick: bool) -> dict[str, Any]:
    """Each stage's cost: wake (1 and 5 words), VAD, STT (grammar and open), intent, TTS."""
    from konak.daemon.engines import build_intents, build_stt

    models = models_dir()
    commands = spoken_commands(cache, models, wake=False)
    noise = np.random.default_rng(1).normal(0, 300, RATE_HZ * (5 if quick else 20))
    audio = np.concatenate([noise.astype(np.int16), *(u.samples for u in commands)])
    with tempfile.TemporaryDirectory(prefix="konak-bench-stages-") as tmp:
        settings = daemon_settings(Path(tmp), models)
        intents = build_intents(settings)
        grammar = build_stt(settings, intents)
        open_settings = replace(settings, stt=replace(settings.stt, mode="open"))
        open_stt = build_stt(open_settings, intents)
    texts = [u.text.rstrip(".") for u in commands]
    repeats = 3 if quick else 20
    intent_ms = statistics.median(
        _median_us(functools.partial(intents.recognize, t), repeats) / 1000 for t in texts
    )
    return {
        "wake_us_per_80ms_chunk": {
            "1_word": _wake(models, audio, 1),
            "5_words": _wake(models, audio, 5),
        },
        "wake_fifth_word": "hey_jarvis loaded a second time under another name",
        "vad_us_per_32ms_frame": _vad(models, audio),
        "stt_grammar": _stt_rtf(grammar, commands),
        "stt_open": _stt_rtf(open_stt, commands),
        "intent_ms": round(intent_ms, 2),
        "intent_texts": texts,
        "tts": _tts(models, 1 if quick else 3),
        "tts_text": REPLY,
    }

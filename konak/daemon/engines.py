"""Loading the engines chosen by settings, once, with their load times."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from konak.daemon import warmup
from konak.daemon.errors import ConfigError
from konak.daemon.grammar import grammar_words, inlined_size, wake_prefixes
from konak.daemon.intent import IntentRecognizer
from konak.daemon.settings import Settings
from konak.daemon.stt import PocketSphinxStt, SttEngine, VoskStt
from konak.daemon.tts import PiperTts, ReplyCache, TtsEngine
from konak.daemon.vad import SileroVad
from konak.daemon.wake import EMBEDDING_MODEL, MELSPEC_MODEL, OpenWakeWord
from konak.errors import KonakError

logger = logging.getLogger(__name__)
T = TypeVar("T")


def model_path(models_dir: Path, model_id: str, key: str) -> Path:
    """Where an installed model is; a missing model names the config key and the fix."""
    from konak.edge_models.store import ModelStore

    try:
        return ModelStore(models_dir).path(model_id)
    except KonakError as exc:
        raise ConfigError(f"{key}: model {model_id!r} is not usable: {exc.message}") from exc


def required_models(settings: Settings) -> dict[str, str]:
    """Every model the settings need, by the config key that names it."""
    wake = settings.wake
    needed = {f"wake.words[{i}].model": w.model for i, w in enumerate(wake.words)}
    if wake.stop_word is not None:
        needed["wake.stop_word"] = wake.stop_word
    needed |= {
        "wake (feature model)": MELSPEC_MODEL,
        "wake (embedding model)": EMBEDDING_MODEL,
        "vad.model": settings.vad.model,
        "stt.model": settings.stt.model,
        "tts.model": settings.tts.model,
    }
    return needed


def word_name(model_id: str) -> str:
    """The wake word's name from its model id (``oww-hey-jarvis`` -> ``hey_jarvis``)."""
    return model_id.removeprefix("oww-").replace("-", "_")


@dataclass
class Engines:
    """Every model the daemon runs, and how long each took to load."""

    wake: OpenWakeWord
    vad: SileroVad
    stt: SttEngine
    intents: IntentRecognizer
    tts: TtsEngine
    load_seconds: dict[str, float] = field(default_factory=dict)


def build_intents(
    settings: Settings,
    sentences: Mapping[str, Sequence[str]] | None = None,
    slot_lists: Mapping[str, Sequence[str]] | None = None,
) -> IntentRecognizer:
    """The recognizer for the configured (and hub-delivered) sentences and slot lists."""
    return IntentRecognizer(
        settings.device.language,
        intent_names=settings.intent.intents,
        sentences={**settings.intent.sentences, **(sentences or {})},
        slot_lists={**settings.intent.slot_lists, **(slot_lists or {})},
    )


def build_stt(settings: Settings, intents: IntentRecognizer) -> SttEngine:
    """The configured STT engine; in grammar mode, constrained by ``intents``' sentences
    with the wake word allowed in front (the pre-roll that holds it is decoded too)."""
    path = model_path(settings.models_dir, settings.stt.model, "stt.model")
    prefixes = wake_prefixes([word_name(w.model) for w in settings.wake.words])
    if settings.stt.engine == "vosk":
        # vosk takes phrases, not JSGF: the grammar's vocabulary plus [unk] for rejection.
        phrases = (
            grammar_words(intents.grammar(lambda _: True))
            if settings.stt.mode == "grammar"
            else None
        )
        return VoskStt(path, phrases=phrases, prefixes=prefixes)
    if settings.stt.mode == "open":
        return PocketSphinxStt(path, prefixes=prefixes)

    def grammar(known_word: Callable[[str], bool]) -> str:
        jsgf = intents.grammar(known_word, prefixes)
        logger.info("STT grammar: %d words with its rules inlined", inlined_size(jsgf))
        return jsgf

    return PocketSphinxStt(
        path, grammar=grammar, min_score=settings.stt.min_score, prefixes=prefixes
    )


def engine_models(settings: Settings) -> dict[str, frozenset[str]]:
    """The model ids each swappable engine is built from (intents need no model)."""
    wake = {w.model for w in settings.wake.words} | {MELSPEC_MODEL, EMBEDDING_MODEL}
    if settings.wake.stop_word is not None:
        wake.add(settings.wake.stop_word)
    return {
        "wake": frozenset(wake),
        "vad": frozenset({settings.vad.model}),
        "stt": frozenset({settings.stt.model}),
        "tts": frozenset({settings.tts.model}),
    }


def load_wake(settings: Settings) -> OpenWakeWord:
    """openWakeWord with the configured words (and the stop word)."""
    models = settings.models_dir
    words = {
        word_name(w.model): model_path(models, w.model, f"wake.words[{i}].model")
        for i, w in enumerate(settings.wake.words)
    }
    if settings.wake.stop_word is not None:
        words[word_name(settings.wake.stop_word)] = model_path(
            models, settings.wake.stop_word, "wake.stop_word"
        )
    return OpenWakeWord(
        model_path(models, MELSPEC_MODEL, "wake (feature model)"),
        model_path(models, EMBEDDING_MODEL, "wake (feature model)"),
        words,
    )


def load_vad(settings: Settings) -> SileroVad:
    """The silero VAD."""
    return SileroVad(model_path(settings.models_dir, settings.vad.model, "vad.model"))


def load_tts(settings: Settings) -> TtsEngine:
    """The piper voice behind the reply cache."""
    return ReplyCache(
        PiperTts(
            model_path(settings.models_dir, settings.tts.model, "tts.model"),
            threads=settings.tts.threads,
            memory_arena=settings.tts.memory_arena,
        )
    )


def load_engines(settings: Settings) -> Engines:
    """Load and warm every engine (each figure in ``load_seconds`` includes its warm-up);
    a missing model or a broken file is one clear error."""
    times: dict[str, float] = {}

    def timed(name: str, build: Callable[[], T], warm: Callable[[T], None]) -> T:
        start = time.perf_counter()
        engine = build()
        warm(engine)
        times[name] = time.perf_counter() - start
        return engine

    wake = timed("wake", lambda: load_wake(settings), warmup.warm_wake)
    vad = timed("vad", lambda: load_vad(settings), warmup.warm_vad)
    intents = timed("intent", lambda: build_intents(settings), warmup.warm_intents)
    stt = timed("stt", lambda: build_stt(settings, intents), warmup.warm_stt)
    tts = timed("tts", lambda: load_tts(settings), warmup.warm_tts)
    logger.info("models loaded: %s", ", ".join(f"{k} {v:.2f}s" for k, v in times.items()))
    return Engines(wake, vad, stt, intents, tts, times)


def reload_engines(settings: Settings, engines: Engines, names: Iterable[str]) -> Engines:
    """A copy of ``engines`` with the engines ``names`` (of :func:`engine_models`) loaded
    and warmed afresh from the store's current models; the others are shared. The STT
    engine is built with ``engines``' intents."""
    loaders: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
        "wake": (lambda: load_wake(settings), warmup.warm_wake),
        "vad": (lambda: load_vad(settings), warmup.warm_vad),
        "stt": (lambda: build_stt(settings, engines.intents), warmup.warm_stt),
        "tts": (lambda: load_tts(settings), warmup.warm_tts),
    }
    fresh: dict[str, Any] = {}
    times = dict(engines.load_seconds)
    for name in sorted(set(names)):
        build, warm = loaders[name]
        start = time.perf_counter()
        fresh[name] = build()
        warm(fresh[name])
        times[name] = time.perf_counter() - start
    return replace(engines, **fresh, load_seconds=times)

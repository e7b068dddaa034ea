"""Text to speech with piper, streamed sentence by sentence."""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from konak.daemon.audio import RATE_HZ, Samples, resample
from konak.daemon.errors import EngineError
from konak.daemon.onnx_session import onnx_session

REPLY_CACHE_BYTES: Final = 8 * 1024 * 1024  # about three minutes of 22.05 kHz speech


class TtsEngine(Protocol):
    """Yields (samples, rate) per sentence, as soon as each is synthesised."""

    def sentences(self, text: str) -> Iterator[tuple[Samples, int]]: ...


class PiperTts:
    """piper 1.8 with a thread count and the ORT memory arena chosen by settings."""

    def __init__(self, model: Path, *, threads: int = 1, memory_arena: bool = False) -> None:
        from piper import PiperVoice
        from piper.config import PiperConfig

        config_path = model.with_name(model.name + ".json")
        try:
            config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            raise EngineError(f"cannot load the piper voice {model}: {exc}") from exc
        # The arena lets RSS grow to ~400 MB; off costs ~15% speed (MODELS.md note 5).
        # Every sentence has another input length: cached memory patterns do not pay.
        session = onnx_session(
            model,
            threads=threads,
            memory_arena=memory_arena,
            memory_pattern=False,
            what="the piper voice",
        )
        self._voice: Any = PiperVoice(session=session, config=config)

    def sentences(self, text: str, *, deterministic: bool = False) -> Iterator[tuple[Samples, int]]:
        """One chunk of audio per sentence of ``text``. Piper adds random variation to each
        utterance; ``deterministic`` turns it off, so the same text gives the same samples
        (for test and benchmark speech)."""
        config = None
        if deterministic:
            from piper.config import SynthesisConfig

            config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        for chunk in self._voice.synthesize(text, syn_config=config):
            yield np.asarray(chunk.audio_int16_array, np.int16), int(chunk.sample_rate)

    def synthesize(self, text: str, *, deterministic: bool = False) -> tuple[Samples, int]:
        """The whole of ``text`` as one array."""
        parts = list(self.sentences(text, deterministic=deterministic))
        if not parts:
            return np.zeros(0, np.int16), 22_050
        return np.concatenate([p for p, _ in parts]), parts[0][1]


def spoken(voice: PiperTts, *parts: str | float, deterministic: bool = True) -> Samples:
    """``parts`` as one 16 kHz recording: each text said by ``voice`` (without piper's
    random variation unless ``deterministic`` is off), each number that many seconds of
    silence. Test, benchmark and demo speech."""
    pieces = []
    for part in parts:
        if isinstance(part, str):
            samples, rate = voice.synthesize(part, deterministic=deterministic)
            pieces.append(resample(samples, rate, RATE_HZ))
        else:
            pieces.append(np.zeros(round(part * RATE_HZ), np.int16))
    return np.concatenate(pieces) if pieces else np.zeros(0, np.int16)


class ReplyCache:
    """A :class:`TtsEngine` that remembers what it said: replies repeat ("Turned on the
    kitchen light."), and a cached reply starts playing at once instead of after piper's
    70-150 ms. Least recently used texts are forgotten past ``max_bytes`` of audio."""

    def __init__(self, voice: PiperTts, *, max_bytes: int = REPLY_CACHE_BYTES) -> None:
        self.voice = voice
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._cache: collections.OrderedDict[str, list[tuple[Samples, int]]] = (
            collections.OrderedDict()
        )
        self._bytes = 0
        self._lock = threading.Lock()

    def sentences(self, text: str) -> Iterator[tuple[Samples, int]]:
        """Each sentence's audio: from the cache, or synthesised (and then cached)."""
        with self._lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                self.hits += 1
        if cached is not None:
            yield from cached
            return
        with self._lock:
            self.misses += 1
        parts: list[tuple[Samples, int]] = []
        for samples, rate in self.voice.sentences(text):
            parts.append((samples, rate))
            yield samples, rate
        self._remember(text, parts)

    def _remember(self, text: str, parts: list[tuple[Samples, int]]) -> None:
        size = sum(samples.nbytes for samples, _ in parts)
        if size > self.max_bytes // 4:
            return  # a long announcement would push out many short replies
        with self._lock:
            if text in self._cache:
                return
            self._cache[text] = parts
            self._bytes += size
            while self._bytes > self.max_bytes and self._cache:
                _, old = self._cache.popitem(last=False)
                self._bytes -= sum(samples.nbytes for samples, _ in old)

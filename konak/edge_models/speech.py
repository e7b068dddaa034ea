"""Test speech for measuring models (``konak models bench`` and ``quantize``): a few
sentences synthesised by piper at 16 kHz, and the word error rate of their transcripts.

The models run through the daemon's own engines (``konak.daemon``), so a figure measured
here is the daemon's. Those imports stay inside the functions: the model tools' other
commands need no engine packages.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from konak.edge_models.errors import ENGINE_UNAVAILABLE, ModelError

if TYPE_CHECKING:
    from konak.daemon.audio import Samples
    from konak.daemon.tts import PiperTts

TEST_SENTENCES: Final = (
    "Turn on the kitchen light.",
    "What is the weather like tomorrow?",
    "Set a timer for ten minutes.",
    "Play some music in the living room.",
    "Turn off all the lights in the house.",
    "What time is it now?",
)
PAD_SECONDS: Final = 0.3  # silence before and after each sentence
PIPER_THREADS: Final = 2  # the benchmarks run piper with two threads and the memory arena


def load_engine(model_id: str, load: Any, *args: Any, **kwargs: Any) -> Any:
    """``load(*args, **kwargs)``; an engine package that is not installed is one
    :class:`ModelError` that says which one."""
    try:
        return load(*args, **kwargs)
    except ImportError as exc:
        raise ModelError(
            f"{model_id}: needs the Python package {exc.name!r} (install konak[device])",
            code=ENGINE_UNAVAILABLE,
        ) from exc


def piper_voice(path: Path) -> PiperTts:
    """The piper voice as the benchmarks run it (two threads, the memory arena on)."""
    from konak.daemon.tts import PiperTts

    voice: PiperTts = load_engine(
        path.name, PiperTts, path, threads=PIPER_THREADS, memory_arena=True
    )
    return voice


def speak(voice: PiperTts, texts: Sequence[str]) -> list[Samples]:
    """Each text as 16 kHz speech with :data:`PAD_SECONDS` of silence around it (with
    piper's random variation, as a voice speaks)."""
    from konak.daemon.tts import spoken

    return [spoken(voice, PAD_SECONDS, t, PAD_SECONDS, deterministic=False) for t in texts]


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

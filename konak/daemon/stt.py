"""Speech to text behind one interface: pocketsphinx (grammar or open) and vosk.

Grammar mode needs a rejection path (MODELS.md note 6): a JSGF search forces any
speech onto some command. The same audio is also decoded with the open language
model, and the grammar's hypothesis is kept only when the two agree closely enough
(difflib's ratio over their phone sequences from the pronunciation dictionary,
``reject_below``); otherwise nothing was heard. Phones rather than words, because the
open model's near misses ("kitchen like") should still count as agreement.
"""

from __future__ import annotations

import difflib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from konak.daemon.audio import RATE_HZ, Samples
from konak.daemon.errors import EngineError
from konak.daemon.grammar import strip_prefix

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transcript:
    """What the engine heard; ``text`` is empty when it rejected the speech."""

    text: str
    rejected: bool = False
    candidate: str = ""  # the grammar's hypothesis, also when rejected
    agreement: float | None = None


class SttStream(Protocol):
    """One command being decoded while it is spoken: fed as audio arrives, then finished."""

    def feed(self, samples: Samples) -> None: ...

    def finish(self) -> Transcript: ...


class SttEngine(Protocol):
    """Speech to text for one command at a time (16 kHz mono samples)."""

    def start(self) -> SttStream: ...

    def transcribe(self, samples: Samples) -> Transcript: ...


def transcribe_whole(engine: SttEngine, samples: Samples) -> Transcript:
    """Decode a whole recording through the engine's stream."""
    stream = engine.start()
    stream.feed(samples)
    return stream.finish()


def agreement(a: list[str], b: list[str]) -> float:
    """How much two token sequences agree, 0..1."""
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(a=a, b=b, autojunk=False).ratio()


class PocketSphinxStt:
    """pocketsphinx 5 with the bundled en-us model; grammar or open vocabulary."""

    def __init__(
        self,
        model_dir: Path,
        *,
        grammar: str | None = None,
        reject_below: float = 0.6,
        prefixes: tuple[str, ...] = (),
    ) -> None:
        from pocketsphinx import Decoder  # type: ignore[import-untyped]

        self.reject_below = reject_below
        self.prefixes = prefixes
        common = {"hmm": str(model_dir / "en-us"), "dict": str(model_dir / "cmudict-en-us.dict")}
        try:
            self._open: Any = Decoder(
                lm=str(model_dir / "en-us.lm.bin"), logfn="/dev/null", **common
            )
            self._grammar: Any = None
            if grammar is not None:
                with tempfile.NamedTemporaryFile("w", suffix=".jsgf", encoding="utf-8") as f:
                    f.write(grammar)
                    f.flush()
                    self._grammar = Decoder(jsgf=f.name, logfn="/dev/null", **common)
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"cannot load pocketsphinx from {model_dir}: {exc}") from exc

    def known_word(self, word: str) -> bool:
        """Whether the pronunciation dictionary has ``word``."""
        return self._open.lookup_word(word) is not None

    def phones(self, text: str) -> list[str]:
        """The phone sequence of ``text`` (words missing from the dictionary are skipped)."""
        out: list[str] = []
        for word in text.split():
            pronunciation = self._open.lookup_word(word)
            if pronunciation:
                out.extend(str(pronunciation).split())
        return out

    @staticmethod
    def _words(decoder: Any) -> list[tuple[str, int]]:
        """The recognised words with their start frames (fillers and silence left out)."""
        if decoder.hyp() is None:
            return []
        return [
            (str(seg.word).split("(")[0], int(seg.start_frame))
            for seg in decoder.seg()
            if not str(seg.word).startswith(("<", "[")) and str(seg.word) != "</s>"
        ]

    def start(self) -> _PocketSphinxStream:
        """Begin a command: its audio is decoded as it is fed."""
        decoders = [self._open] if self._grammar is None else [self._open, self._grammar]
        return _PocketSphinxStream(self, decoders)

    def transcribe(self, samples: Samples) -> Transcript:
        """The transcript of a whole recording."""
        return transcribe_whole(self, samples)

    def _result(
        self, open_words: list[tuple[str, int]], words: list[tuple[str, int]]
    ) -> Transcript:
        """The transcript, or a rejection when the grammar hypothesis is not supported."""
        open_text = " ".join(w for w, _ in open_words)
        if self._grammar is None:
            return Transcript(strip_prefix(open_text, self.prefixes))
        candidate = " ".join(w for w, _ in words)
        text = strip_prefix(candidate, self.prefixes)
        # Compare only what follows the wake word's tail: the open model garbles names.
        skipped = len(candidate.split()) - len(text.split())
        start = words[skipped][1] if text else 0
        heard = " ".join(w for w, frame in open_words if frame >= start - 5)
        score = agreement(self.phones(text), self.phones(heard))
        if not text or score < self.reject_below:
            logger.info("rejected %r (open: %r, agreement %.2f)", candidate, open_text, score)
            return Transcript("", rejected=True, candidate=candidate, agreement=score)
        return Transcript(text, candidate=candidate, agreement=score)


class _PocketSphinxStream:
    """Feeds each decoder as audio arrives; the endpoint leaves only finalisation."""

    def __init__(self, engine: PocketSphinxStt, decoders: list[Any]) -> None:
        self._engine, self._decoders = engine, decoders
        for decoder in decoders:
            decoder.start_utt()

    def feed(self, samples: Samples) -> None:
        data = samples.astype("<i2").tobytes()
        for decoder in self._decoders:
            decoder.process_raw(data, full_utt=False)

    def finish(self) -> Transcript:
        for decoder in self._decoders:
            decoder.end_utt()
        words = [PocketSphinxStt._words(d) for d in self._decoders]
        return self._engine._result(words[0], words[1] if len(words) > 1 else [])


class VoskStt:
    """vosk's streaming recognizer, optionally limited to a list of phrases."""

    def __init__(self, model_dir: Path, *, phrases: list[str] | None = None) -> None:
        import vosk  # type: ignore[import-untyped]

        vosk.SetLogLevel(-1)
        try:
            self._model = vosk.Model(str(model_dir))
        except Exception as exc:  # vosk raises a bare Exception on a bad model
            raise EngineError(f"cannot load the vosk model {model_dir}: {exc}") from exc
        self._phrases = phrases
        self._vosk = vosk

    def start(self) -> _VoskStream:
        """Begin a command with a fresh recognizer."""
        args: list[Any] = [self._model, float(RATE_HZ)]
        if self._phrases is not None:
            args.append(json.dumps([*self._phrases, "[unk]"]))
        return _VoskStream(self._vosk.KaldiRecognizer(*args), grammar=self._phrases is not None)

    def transcribe(self, samples: Samples) -> Transcript:
        """The transcript of a whole recording, fed in 0.2 s pieces as a stream."""
        stream = self.start()
        step = RATE_HZ // 5
        for offset in range(0, samples.size, step):
            stream.feed(samples[offset : offset + step])
        return stream.finish()


class _VoskStream:
    def __init__(self, recognizer: Any, *, grammar: bool) -> None:
        self._recognizer, self._grammar = recognizer, grammar

    def feed(self, samples: Samples) -> None:
        self._recognizer.AcceptWaveform(samples.astype("<i2").tobytes())

    def finish(self) -> Transcript:
        text = str(json.loads(self._recognizer.FinalResult()).get("text", "")).strip()
        if self._grammar and (not text or "[unk]" in text):
            return Transcript("", rejected=True, candidate=text)
        return Transcript(text)

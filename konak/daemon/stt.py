"""Speech to text behind one interface: pocketsphinx (grammar or open) and vosk.

A command is decoded while it is spoken: ``start()`` gives a stream that is fed each
chunk as it arrives, ``partial()`` is the best guess so far, and ``finish()`` at the
endpoint only finalises (the search has kept up with the audio).

Grammar mode is one pocketsphinx search over a JSGF grammar of the device's commands
(see grammar.py), which forces any speech onto some command (MODELS.md note 6). The
rejection path is a phone loop decoded beside it (pocketsphinx's allphone search over
the bundled phone language model, a sixth of the grammar's cost): over the frames of
the command, the grammar path's score is compared with the phone loop's, per frame.
Speech the grammar explains nearly as well as free phones is a command; speech it
explains much worse is rejected (``min_score``, in nats per frame; the measurements
are in docs/daemon.md).
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from konak.daemon.audio import RATE_HZ, Samples
from konak.daemon.errors import EngineError
from konak.daemon.grammar import grammar_words, strip_prefix
from konak.daemon.settings import DEFAULT_MIN_SCORE

logger = logging.getLogger(__name__)

FRAMES_PER_SECOND: Final = 100  # pocketsphinx's frame rate (``frate``)
_SCORE_SHIFT: Final = 1 << 10  # pocketsphinx's SENSCR_SHIFT
# The grammar search, tuned over espeak-ng and piper voices (docs/daemon.md): a wide
# word-exit beam (the default pruned away the right path, or every path, for voices
# the model fits badly); alternative pronunciations for the wake words only (for command
# words they cost more than they found); every senone scored, so the path's scores are
# relative to the best senone of each frame, not to the best one the grammar happened
# to keep (the rejection compares them with the phone loop's); no bestpath, which on a
# grammar's lattice took 1-3 s at the endpoint and was less accurate.
GRAMMAR_SEARCH: Final[Mapping[str, Any]] = {
    "beam": 1e-60,
    "pbeam": 1e-60,
    "wbeam": 1e-45,
    "fsgusealtpron": True,  # only wake words are given alternatives (_load_grammar)
    "compallsen": True,
    "bestpath": False,
}
# The phone loop: CI phones under the bundled phone trigram, lightly weighted.
PHONE_SEARCH: Final[Mapping[str, Any]] = {"lw": 2.0}

GrammarSource = str | Callable[[Callable[[str], bool]], str]


@dataclass(frozen=True)
class Transcript:
    """What the engine heard; ``text`` is empty when it rejected the speech.

    ``candidate`` is the grammar's hypothesis (with the wake word), also when rejected;
    ``score`` what the rejection decided on (grammar mode); ``command_start_seconds``
    where the command after the wake word starts in the audio fed, from the decoder's
    word segmentation.
    """

    text: str
    rejected: bool = False
    candidate: str = ""
    score: float | None = None
    command_start_seconds: float | None = None


class SttStream(Protocol):
    """One command being decoded while it is spoken: fed as audio arrives, then finished."""

    def feed(self, samples: Samples) -> None: ...

    def partial(self) -> str: ...

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


@dataclass(frozen=True)
class Span:
    """A word, phone or filler the decoder placed over frames ``start..end``."""

    text: str
    start: int
    end: int
    score: float = 0.0  # the path's log score over the span (acoustic + language), nats

    @property
    def filler(self) -> bool:
        """Silence, noise or a search marker rather than a word."""
        return self.text.startswith(("<", "[", "+", "(")) or self.text in ("SIL", "</s>")


def command_words(spans: list[Span], prefixes: tuple[str, ...]) -> list[Span]:
    """The words after a leading wake word phrase."""
    words = [s for s in spans if not s.filler]
    command = strip_prefix(" ".join(w.text for w in words), prefixes)
    return words[len(words) - len(command.split()) :] if command else []


def phone_loop_score(
    command: list[Span], grammar_path: list[Span], phone_path: list[Span]
) -> float | None:
    """Over the frames of the command, the grammar path's score minus the phone loop's
    (a phone counts where its middle falls), per frame, in nats: higher is more like a
    command. None without a command."""
    if not command:
        return None
    first, last = command[0].start, command[-1].end
    grammar = sum(s.score for s in grammar_path if s.start >= first and s.end <= last)
    loop = sum(s.score for s in phone_path if first <= (s.start + s.end) / 2 <= last)
    return (grammar - loop) / (last - first + 1)


def _spans(decoder: Any, *, shifted: bool) -> list[Span]:
    """The decoder's segmentation (words or phones, and fillers).

    A segment's scores come as ``1.0001 ** units``; the search's own segments (allphone,
    and a grammar without bestpath) count units shifted by 10 bits. The acoustic and
    language parts are added: pocketsphinx's split between them is not exact (the
    allphone search subtracts another transition's score), their sum is the path's.
    """
    if decoder.hyp() is None:
        return []
    scale = _SCORE_SHIFT if shifted else 1
    return [
        Span(
            str(seg.word).split("(")[0] if not str(seg.word).startswith("(") else str(seg.word),
            int(seg.start_frame),
            int(seg.end_frame),
            (_log(float(seg.ascore)) + _log(float(seg.lscore))) * scale,
        )
        for seg in decoder.seg()
    ]


def _log(value: float) -> float:
    return math.log(value) if value > 0 else -math.inf


_VOWELS: Final = frozenset(
    {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}
)


def non_rhotic(phones: str) -> str:
    """A CMUdict pronunciation as a non-rhotic accent says it: no R after a vowel unless
    a vowel follows ("jarvis" JH AA R V IH S -> JH AA V IH S)."""
    out = phones.split()
    keep = [
        phone
        for i, phone in enumerate(out)
        if not (
            phone == "R"
            and i > 0
            and out[i - 1] in _VOWELS
            and (i + 1 == len(out) or out[i + 1] not in _VOWELS)
        )
    ]
    return " ".join(keep)


class Pronunciations:
    """A pronunciation dictionary file (cmudict's format: ``word phones…``, alternatives
    as ``word(2)``), read for the words asked for only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lookup(self, words: Iterable[str]) -> dict[str, list[str]]:
        """Each of ``words`` the file has, with its pronunciations in the file's order."""
        wanted = set(words)
        found: dict[str, list[str]] = {}
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                parts = line.split(None, 1)
                if len(parts) < 2:
                    continue
                word = parts[0].split("(", 1)[0]
                if word in wanted:
                    found.setdefault(word, []).append(parts[1].strip())
        return found


class PocketSphinxStt:
    """pocketsphinx 5 with the bundled en-us model; a grammar or the open language model.

    ``grammar`` is the JSGF text, or a function building it from ``known_word`` (whether
    the pronunciation dictionary has a word). Without it the open language model is used (no
    rejection).
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        grammar: GrammarSource | None = None,
        min_score: float = DEFAULT_MIN_SCORE,
        prefixes: tuple[str, ...] = (),
    ) -> None:
        from pocketsphinx import Decoder  # type: ignore[import-untyped]

        self.min_score = min_score
        self.prefixes = prefixes
        self._dictionary = Pronunciations(model_dir / "cmudict-en-us.dict")
        files = {"hmm": str(model_dir / "en-us"), "logfn": "/dev/null"}
        self._phones: Any = None
        self._fsg: Any = None
        try:
            if grammar is None:
                # The open language model may say any of its 130,000 words.
                self._decoder: Any = Decoder(
                    lm=str(model_dir / "en-us.lm.bin"), dict=str(self._dictionary.path), **files
                )
            else:
                # The grammar's words only: the whole dictionary costs ~22 MB per decoder.
                self._decoder = Decoder(lm=None, dict=os.devnull, **files, **GRAMMAR_SEARCH)
                jsgf = self._load_grammar(grammar)
                self._decoder.add_jsgf_string("command", jsgf)
                self._decoder.activate_search("command")
                self._fsg = self._decoder.get_fsg("command")
                # The phone loop needs the acoustic model's phones, no words.
                self._phones = Decoder(
                    allphone=str(model_dir / "en-us-phone.lm.bin"),
                    lm=None,
                    dict=os.devnull,
                    **files,
                    **PHONE_SEARCH,
                )
        except (OSError, RuntimeError, ValueError) as exc:
            raise EngineError(f"cannot load pocketsphinx from {model_dir}: {exc}") from exc
        self._stream: _PocketSphinxStream | None = None

    def _load_grammar(self, grammar: GrammarSource) -> str:
        """The JSGF text, with its words' pronunciations added to the decoder; a grammar
        built by a function is built again without the words the dictionary lacks.

        A command word gets its first pronunciation (alternatives cost more than they
        found); a wake word gets all of them and their non-rhotic forms, so the decoder
        can align the wake word at the start of the pre-roll in British English too."""
        jsgf = grammar if isinstance(grammar, str) else grammar(lambda _: True)
        wanted = grammar_words(jsgf)
        found = self._dictionary.lookup(wanted)
        if not isinstance(grammar, str) and len(found) < len(wanted):
            jsgf = grammar(found.__contains__)
        wake_words = {word for prefix in self.prefixes for word in prefix.split()}
        for word, pronunciations in found.items():
            if word in wake_words:
                forms = [*pronunciations, *(non_rhotic(p) for p in pronunciations)]
                pronunciations = list(dict.fromkeys(forms))
            for i, phones in enumerate(pronunciations[: None if word in wake_words else 1]):
                self._decoder.add_word(word if i == 0 else f"{word}({i + 1})", phones, False)
        return jsgf

    @property
    def grammar_mode(self) -> bool:
        """Whether a grammar constrains (and rejection guards) the search."""
        return self._fsg is not None

    def phones(self, text: str) -> list[str]:
        """The phone sequence of ``text`` (words missing from the dictionary are skipped)."""
        words = text.split()
        found = self._dictionary.lookup(words)
        return [phone for word in words for phone in found.get(word, [""])[0].split()]

    def accepts(self, text: str) -> bool:
        """Whether ``text`` (wake word included) is a sentence of the grammar."""
        return self._fsg is not None and bool(text) and bool(self._fsg.accept(text))

    def start(self) -> _PocketSphinxStream:
        """Begin a command: its audio is decoded as it is fed. A stream left unfinished
        (a cancelled turn) is dropped."""
        if self._stream is not None:
            self._stream.abandon()
        self._stream = _PocketSphinxStream(self)
        return self._stream

    def transcribe(self, samples: Samples) -> Transcript:
        """The transcript of a whole recording."""
        return transcribe_whole(self, samples)

    def _decoders(self) -> list[Any]:
        return [self._decoder] if self._phones is None else [self._decoder, self._phones]

    def _result(self, path: list[Span], phones: list[Span]) -> Transcript:
        if not self.grammar_mode:
            return open_transcript(path, self.prefixes)
        return grammar_transcript(path, phones, prefixes=self.prefixes, min_score=self.min_score)


def open_transcript(path: list[Span], prefixes: tuple[str, ...]) -> Transcript:
    """What the open language model heard, without the wake word."""
    command = command_words(path, prefixes)
    return Transcript(
        " ".join(w.text for w in command),
        candidate=" ".join(s.text for s in path if not s.filler),
        command_start_seconds=command[0].start / FRAMES_PER_SECOND if command else None,
    )


def grammar_transcript(
    path: list[Span], phones: list[Span], *, prefixes: tuple[str, ...], min_score: float
) -> Transcript:
    """The grammar's command, or a rejection when it explains the audio too badly
    against the phone loop (or holds nothing but the wake word)."""
    candidate = " ".join(s.text for s in path if not s.filler)
    command = command_words(path, prefixes)
    score = phone_loop_score(command, path, phones)
    if score is None or score < min_score:
        logger.info(
            "rejected %r (score %s)", candidate, "none" if score is None else f"{score:.2f}"
        )
        return Transcript("", rejected=True, candidate=candidate, score=score)
    return Transcript(
        " ".join(w.text for w in command),
        candidate=candidate,
        score=score,
        command_start_seconds=command[0].start / FRAMES_PER_SECOND,
    )


class _PocketSphinxStream:
    """Feeds the decoders as audio arrives; the endpoint leaves only finalisation."""

    def __init__(self, engine: PocketSphinxStt) -> None:
        self._engine = engine
        self._open = True
        self._done: Transcript | None = None
        for decoder in engine._decoders():
            decoder.start_utt()

    def feed(self, samples: Samples) -> None:
        if not self._open:
            raise EngineError("the STT stream is finished")
        data = samples.astype("<i2").tobytes()
        for decoder in self._engine._decoders():
            decoder.process_raw(data, full_utt=False)

    def partial(self) -> str:
        """The best hypothesis so far, without the wake word ("" before any word)."""
        if not self._open:
            return self._done.text if self._done else ""
        hyp = self._engine._decoder.hyp()
        return strip_prefix(str(hyp.hypstr), self._engine.prefixes) if hyp else ""

    def finish(self) -> Transcript:
        if self._done is not None:
            return self._done
        if not self._open:
            raise EngineError("the STT stream was dropped for a newer one")
        self._close()
        engine = self._engine
        path = _spans(engine._decoder, shifted=not GRAMMAR_SEARCH.get("bestpath", True))
        phones = _spans(engine._phones, shifted=True) if engine._phones is not None else []
        self._done = engine._result(path, phones)
        return self._done

    def abandon(self) -> None:
        """Stop decoding without a result."""
        if self._open:
            self._close()

    def _close(self) -> None:
        self._open = False
        for decoder in self._engine._decoders():
            decoder.end_utt()
        if self._engine._stream is self:
            self._engine._stream = None


class VoskStt:
    """vosk's streaming recognizer, optionally limited to a list of phrases (then any
    word outside them, vosk's ``[unk]``, rejects the command)."""

    def __init__(
        self, model_dir: Path, *, phrases: list[str] | None = None, prefixes: tuple[str, ...] = ()
    ) -> None:
        import vosk  # type: ignore[import-untyped]

        vosk.SetLogLevel(-1)
        try:
            self._model = vosk.Model(str(model_dir))
        except Exception as exc:  # vosk raises a bare Exception on a bad model
            raise EngineError(f"cannot load the vosk model {model_dir}: {exc}") from exc
        self._phrases = phrases
        self.prefixes = prefixes
        self._vosk = vosk

    def start(self) -> _VoskStream:
        """Begin a command with a fresh recognizer."""
        args: list[Any] = [self._model, float(RATE_HZ)]
        if self._phrases is not None:
            args.append(json.dumps([*self._phrases, *self.prefixes, "[unk]"]))
        recognizer = self._vosk.KaldiRecognizer(*args)
        recognizer.SetWords(True)
        return _VoskStream(recognizer, grammar=self._phrases is not None, prefixes=self.prefixes)

    def transcribe(self, samples: Samples) -> Transcript:
        """The transcript of a whole recording, fed in 0.2 s pieces as a stream."""
        stream = self.start()
        step = RATE_HZ // 5
        for offset in range(0, samples.size, step):
            stream.feed(samples[offset : offset + step])
        return stream.finish()


class _VoskStream:
    def __init__(self, recognizer: Any, *, grammar: bool, prefixes: tuple[str, ...]) -> None:
        self._recognizer, self._grammar, self._prefixes = recognizer, grammar, prefixes
        self._words: list[dict[str, Any]] = []  # from results vosk ended at a pause

    def feed(self, samples: Samples) -> None:
        if self._recognizer.AcceptWaveform(samples.astype("<i2").tobytes()):
            self._words.extend(json.loads(self._recognizer.Result()).get("result", []))

    def partial(self) -> str:
        """vosk's partial result, without the wake word."""
        said = [str(w.get("word", "")) for w in self._words]
        heard = str(json.loads(self._recognizer.PartialResult()).get("partial", ""))
        return strip_prefix(" ".join([*said, *heard.split()]).strip(), self._prefixes)

    def finish(self) -> Transcript:
        self._words.extend(json.loads(self._recognizer.FinalResult()).get("result", []))
        words = [
            Span(
                str(w["word"]),
                round(float(w["start"]) * FRAMES_PER_SECOND),
                round(float(w["end"]) * FRAMES_PER_SECOND),
            )
            for w in self._words
        ]
        candidate = " ".join(w.text for w in words)
        command = command_words(words, self._prefixes)
        text = " ".join(w.text for w in command)
        start = command[0].start / FRAMES_PER_SECOND if command else None
        unknown = any(w.text == "[unk]" for w in words)
        if self._grammar and (not text or unknown):
            return Transcript("", rejected=True, candidate=candidate)
        return Transcript(text, candidate=candidate, command_start_seconds=start)

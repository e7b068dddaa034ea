"""The recognition evaluation's corpus and voices: labelled utterances, spoken at run time
by espeak-ng voices (not the project's piper voice), cached by hash."""

from __future__ import annotations

import enum
import hashlib
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from konak.daemon.audio import RATE_HZ, Samples, read_wav, resample, write_wav
from konak.daemon.intent import SlotValue
from konak.errors import KonakError

logger = logging.getLogger(__name__)

WAKE_PHRASE: Final = "hey jarvis,"
LEAD_SECONDS: Final = 1.0  # silence before each utterance
TAIL_SECONDS: Final = 1.5  # silence after it (the endpointer needs 0.7 s)
MIN_WPM: Final = 80
MAX_WPM: Final = 450  # espeak-ng's range
ESPEAK_TIMEOUT_SECONDS: Final = 30.0
CACHE_VERSION: Final = 1  # bump when the way audio is made changes
# The device's names and areas for the evaluation (the hub would send these).
SLOT_LISTS: Final[Mapping[str, Sequence[str]]] = {
    "name": ["kitchen light", "bedroom lamp", "porch light", "ceiling fan"],
    "area": ["kitchen", "bedroom", "living room"],
}


class EvalError(KonakError):
    """The evaluation could not run."""

    code = "bench_eval"


class Kind(enum.StrEnum):
    """What an utterance is and what a working device does with it."""

    COMMAND = "command"  # wake word + an in-grammar command: its intent
    UNKNOWN = "unknown"  # wake word + out-of-grammar speech: rejected, no intent
    NO_WAKE = "no_wake"  # speech without the wake word: nothing at all


@dataclass(frozen=True)
class Case:
    """One labelled utterance: the text said (after the wake phrase for commands and
    unknown speech), the expected intent and its key slots."""

    kind: Kind
    text: str
    intent: str | None = None
    slots: Mapping[str, SlotValue] = field(default_factory=dict)

    @property
    def spoken(self) -> str:
        """The whole utterance, said in one breath."""
        return self.text if self.kind is Kind.NO_WAKE else f"{WAKE_PHRASE} {self.text}"


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice (``en-gb+m3``: voice plus variant) and its speaking rate."""

    name: str
    wpm: int
    description: str = ""

    @property
    def label(self) -> str:
        """``name@wpm``, as given to ``--voices``."""
        return f"{self.name}@{self.wpm}"


DEFAULT_VOICES: Final = (
    Voice("en-us", 150, "US English, male"),
    Voice("en-us+f3", 165, "US English, female"),
    Voice("en-gb+m3", 140, "British English, male"),
    Voice("en-gb+f4", 175, "British English, female"),
    Voice("en-gb-x-rp", 160, "Received Pronunciation, male"),
    Voice("en-029+f2", 130, "Caribbean English, female"),
    Voice("en-gb-scotland", 155, "Scottish English, male"),
)


def parse_voices(text: str) -> tuple[Voice, ...]:
    """``en-us,en-gb+m3@140``: a known voice keeps its rate unless ``@wpm`` is given;
    another one speaks at 150 words per minute."""
    known = {v.name: v for v in DEFAULT_VOICES}
    voices = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, rate = part.partition("@")
        voice = known.get(name, Voice(name, 150))
        if rate:
            try:
                wpm = int(rate)
            except ValueError:
                raise EvalError(f"{part}: the rate after @ must be words per minute") from None
            if not MIN_WPM <= wpm <= MAX_WPM:
                raise EvalError(f"{part}: words per minute must be {MIN_WPM}..{MAX_WPM}")
            voice = Voice(name, wpm, voice.description)
        voices.append(voice)
    if not voices:
        raise EvalError("no voices given")
    return tuple(voices)


ON, OFF = "HassTurnOn", "HassTurnOff"
TIME, DATE = "HassGetCurrentTime", "HassGetCurrentDate"
START, CANCEL, STATUS = "HassStartTimer", "HassCancelTimer", "HassTimerStatus"


def _command(text: str, intent: str, **slots: SlotValue) -> Case:
    return Case(Kind.COMMAND, text, intent, slots)


# In the order a --limit takes them: the first seven are one wording of each intent,
# the one most voices recognised when the evaluation was written, so a quick run's
# floors (tests/bench/test_eval.py) can catch a regression; the rest follow.
COMMANDS: Final = (
    _command("turn on the porch light", ON, name="porch light"),
    _command("turn off the ceiling fan", OFF, name="ceiling fan"),
    _command("what's the time", TIME),
    _command("what is the date", DATE),
    _command("set a timer for ten minutes", START, minutes=10),
    _command("how much time is left on my timer", STATUS),
    _command("cancel my timer", CANCEL),
    _command("turn on the kitchen light", ON, area="kitchen"),
    _command("what time is it", TIME),
    _command("set a timer for five minutes", START, minutes=5),
    _command("turn off the bedroom lamp", OFF, area="bedroom"),
    _command("cancel the timer", CANCEL),
    _command("turn on the lights in the living room", ON, area="living room"),
    _command("turn off the kitchen light", OFF, area="kitchen"),
    _command("what's the date today", DATE),
    _command("timer status", STATUS),
    _command("turn on the bedroom lamp", ON, area="bedroom"),
    _command("turn off the porch light", OFF, name="porch light"),
    _command("turn on the ceiling fan", ON, name="ceiling fan"),
    _command("turn off the lights in the living room", OFF, area="living room"),
    _command("tell me the time", TIME),
    _command("start a timer for two minutes", START, minutes=2),
    _command("switch on the kitchen light", ON, area="kitchen"),
    _command("what is today's date", DATE),
    _command("stop the timer", CANCEL),
    _command("how long is left on the timer", STATUS),
    _command("switch off the bedroom lamp", OFF, area="bedroom"),
    _command("switch on the porch light", ON, name="porch light"),
    _command("switch off the ceiling fan", OFF, name="ceiling fan"),
    _command("turn on the lights in the kitchen", ON, area="kitchen"),
    _command("what is the time", TIME),
    _command("set a timer for thirty seconds", START, seconds=30),
    _command("turn off the lights in the bedroom", OFF, area="bedroom"),
    _command("set a five minute timer", START, minutes=5),
    _command("turn on the living room lights", ON, area="living room"),
    _command("turn off the living room lights", OFF, area="living room"),
    _command("switch off the kitchen light", OFF, area="kitchen"),
    _command("switch on the bedroom lamp", ON, area="bedroom"),
    _command("turn on the kitchen lights", ON, area="kitchen"),
    _command("turn off the bedroom lights", OFF, area="bedroom"),
    _command("lights on in the living room", ON, area="living room"),
    _command("lights off in the kitchen", OFF, area="kitchen"),
    _command("kitchen light on", ON, area="kitchen"),
    _command("bedroom lamp off", OFF, area="bedroom"),
    _command("turn on the lights in the bedroom", ON, area="bedroom"),
    _command("turn off the lights in the kitchen", OFF, area="kitchen"),
)

# After the wake word, outside the grammar: some close to a command on purpose.
UNKNOWN: Final = tuple(
    Case(Kind.UNKNOWN, text)
    for text in (
        "tell me a joke about penguins",
        "what's the weather in paris",
        "turn on the television",
        "play some music",
        "open the garage door",
        "call my mother",
        "turn up the volume",
        "what is the capital of france",
        "order a pizza",
        "set an alarm for seven",
        "remind me to buy milk",
        "who won the football game",
        "read me the news",
        "lock the front door",
        "how tall is the eiffel tower",
        "add eggs to my shopping list",
        "turn on the oven",
        "what's on my calendar today",
        "make the lights brighter",
        "send a message to john",
        "how do you make pancakes",
        "is it going to rain tomorrow",
    )
)

# No wake word: ordinary speech, some of it a command, must trigger nothing.
NO_WAKE: Final = tuple(
    Case(Kind.NO_WAKE, text)
    for text in (
        "turn on the kitchen light",
        "the weather is nice today",
        "what time is it",
        "I left the kitchen light on this morning",
        "set a timer for five minutes",
        "my cat likes to sleep on the sofa",
        "turn off the bedroom lamp",
        "could you switch off the porch light later",
        "cancel the timer",
        "the ceiling fan makes a strange noise",
        "please call my mother tomorrow",
        "I bought three apples at the market",
        "the train to london leaves at noon",
        "we should paint the fence green",
        "dinner will be ready in five minutes",
        "have you seen my keys anywhere",
        "the living room needs a new carpet",
        "she turned off the television and went to bed",
        "hey there, how are you doing",
        "what a lovely garden you have",
        "my brother works as a nurse",
        "the meeting starts at half past nine",
    )
)

CORPUS: Final = COMMANDS + UNKNOWN + NO_WAKE


def select(limit: int | None) -> tuple[Case, ...]:
    """The corpus, or its first ``limit`` utterances of each kind."""
    if limit is None:
        return CORPUS
    return COMMANDS[:limit] + UNKNOWN[:limit] + NO_WAKE[:limit]


class Synthesizer:
    """espeak-ng speech at 16 kHz with the lead and tail silence, cached by hash."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.espeak = shutil.which("espeak-ng")
        if self.espeak is None:
            raise EvalError("espeak-ng is not installed (apt-get install espeak-ng)")
        cache.mkdir(parents=True, exist_ok=True)
        ignore = cache / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")

    def check(self, voice: Voice) -> None:
        """Refuse a voice espeak-ng does not have, before any model is loaded."""
        assert self.espeak is not None
        argv = [self.espeak, "-q", "-v", voice.name, "x"]
        try:
            done = subprocess.run(  # noqa: S603 - an argv list, no shell
                argv, capture_output=True, text=True, timeout=ESPEAK_TIMEOUT_SECONDS, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise EvalError(f"espeak-ng -v {voice.name} did not finish") from exc
        if done.returncode != 0:
            message = done.stderr.strip() or f"exit status {done.returncode}"
            raise EvalError(f"espeak-ng has no voice {voice.name!r}: {message}")

    def path(self, voice: Voice, case: Case) -> Path:
        """A WAV of ``case`` spoken by ``voice`` (made once)."""
        key = repr((CACHE_VERSION, voice.name, voice.wpm, case.spoken, LEAD_SECONDS, TAIL_SECONDS))
        path = self.cache / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.wav"
        if not path.exists():
            samples = self._speak(voice, case.spoken)
            silence = [np.zeros(round(s * RATE_HZ), np.int16) for s in (LEAD_SECONDS, TAIL_SECONDS)]
            partial = path.with_suffix(".part")
            write_wav(partial, np.concatenate([silence[0], samples, silence[1]]), RATE_HZ)
            partial.replace(path)  # atomic: an interrupted run leaves no half file
            logger.debug("synthesised %r with %s into %s", case.spoken, voice.label, path)
        return path

    def _speak(self, voice: Voice, text: str) -> Samples:
        assert self.espeak is not None
        with tempfile.TemporaryDirectory(prefix="konak-eval-") as tmp:
            out = Path(tmp) / "speech.wav"
            cmd = [self.espeak, "-v", voice.name, "-s", str(voice.wpm), "-w", str(out), text]
            try:
                done = subprocess.run(  # noqa: S603 - an argv list, no shell
                    cmd, capture_output=True, text=True, timeout=ESPEAK_TIMEOUT_SECONDS, check=False
                )
            except subprocess.TimeoutExpired as exc:
                raise EvalError(f"espeak-ng -v {voice.name} did not finish") from exc
            if done.returncode != 0 or not out.exists():
                message = done.stderr.strip() or f"exit status {done.returncode}"
                raise EvalError(f"espeak-ng -v {voice.name} failed: {message}")
            samples, rate = read_wav(out)
        return resample(samples, rate, RATE_HZ)

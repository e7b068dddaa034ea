"""``make eval``: how well the real daemon turn recognises commands spoken by voices it
was not tuned on, and how well it rejects everything else.

Each labelled utterance of :mod:`konak.bench.eval_corpus` is spoken by several espeak-ng
voices and run through the daemon's own turn (:class:`konak.daemon.service.Daemon` over
a file, engines loaded once); the run's events say whether the wake word was heard, what
was transcribed, whether the speech was rejected and which intent was recognised.
Writes ``eval.json`` and ``eval.md``::

    python -m konak.bench.eval [--voices en-us,en-gb+m3@140] [--limit N] [--out bench]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from konak.bench.eval_corpus import (
    DEFAULT_VOICES,
    SLOT_LISTS,
    Case,
    EvalError,
    Kind,
    Synthesizer,
    Voice,
    parse_voices,
    select,
)
from konak.bench.eval_score import CAUSES, Heard, judge, read_events, summarize
from konak.bench.stats import machine
from konak.daemon.audio import Samples
from konak.daemon.events import Event
from konak.daemon.settings import Settings
from konak.daemon.stt import SttEngine, SttStream, Transcript, transcribe_whole
from konak.errors import KonakError
from konak.protocol import Intent, Reply

if TYPE_CHECKING:
    from konak.daemon.service import Daemon

logger = logging.getLogger(__name__)

TENANT: Final = "eval"
DEVICE: Final = "eval-pi"
UTTERANCE_TIMEOUT_SECONDS: Final = 120.0
JOIN_SECONDS: Final = 10.0
POLL_SECONDS: Final = 0.05  # how often a wait checks that the daemon is still running


class RecordingHub:
    """The hub as a turn sees it: records each intent and answers at once, silently."""

    def __init__(self) -> None:
        self.sent: list[Intent] = []

    def send(self, intent: Intent) -> None:
        self.sent.append(intent)

    def wait_reply(self, turn_id: str, timeout: float, cancelled: threading.Event) -> Reply | None:
        return Reply(tenant=TENANT, device=DEVICE, turn_id=turn_id, text="")

    def queued(self) -> int:
        return 0


class RecordingStt:
    """The daemon's STT engine, unchanged, keeping each transcript (the grammar's
    hypothesis and its rejection score are not in the run's events). Everything else
    (a stream's ``partial`` for the grammar-aware endpoint, ...) is the engine's own."""

    def __init__(self, inner: SttEngine) -> None:
        self.inner = inner
        self.transcripts: list[Transcript] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def start(self) -> SttStream:
        return _RecordingStream(self, self.inner.start())

    def transcribe(self, samples: Samples) -> Transcript:
        return transcribe_whole(self, samples)


class _RecordingStream:
    def __init__(self, stt: RecordingStt, inner: SttStream) -> None:
        self.stt, self.inner = stt, inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def feed(self, samples: Samples) -> None:
        self.inner.feed(samples)

    def finish(self) -> Transcript:
        transcript = self.inner.finish()
        self.stt.transcripts.append(transcript)
        return transcript


class Evaluator:
    """Engines loaded once; each utterance runs through a fresh daemon over its file."""

    def __init__(self, settings: Settings, *, realtime: bool = False) -> None:
        from konak.daemon.engines import load_engines, word_name
        from konak.daemon.grammar import wake_prefixes

        self.settings = settings
        self.realtime = realtime
        self.engines = load_engines(settings)
        self.prefixes = wake_prefixes([word_name(w.model) for w in settings.wake.words])

    def new_speaker(self) -> None:
        """A fresh STT decoder (pocketsphinx adapts its cepstral mean from one command to
        the next), so a voice's figures do not depend on the voice heard before it."""
        from konak.daemon.engines import build_stt

        self.engines = replace(self.engines, stt=build_stt(self.settings, self.engines.intents))

    def hear(self, voice: Voice, case: Case, path: Path) -> Heard:
        """Run the daemon over one utterance's file and judge what it did."""
        from konak.daemon.audio import FileSource, NullSink
        from konak.daemon.grammar import strip_prefix
        from konak.daemon.service import Daemon

        stt, hub = RecordingStt(self.engines.stt), RecordingHub()
        engines = replace(self.engines, stt=stt)
        engines.wake.reset()
        daemon = Daemon(
            self.settings,
            engines,
            FileSource(path, realtime=self.realtime),
            NullSink(),
            offline=True,
            hub_port=hub,
        )
        events: list[Event] = []
        daemon.bus.subscribe(events.append)
        thread = threading.Thread(target=daemon.run, name="konak-eval-daemon", daemon=True)
        started = time.monotonic()
        thread.start()
        try:
            self._wait(daemon, path)
        finally:
            daemon.stop()
            thread.join(JOIN_SECONDS)
        heard = Heard(voice.label, case.kind.value, case.text, case.intent, dict(case.slots))
        heard.seconds = round(time.monotonic() - started, 2)
        read_events(heard, events)
        heard.hub_intents = [i.intent for i in hub.sent]
        if stt.transcripts:
            first = stt.transcripts[0]
            heard.candidate = strip_prefix(first.candidate or first.text, self.prefixes)
            heard.score = None if first.score is None else round(first.score, 3)
        judge(heard, case, self.engines.intents.recognize)
        return heard

    @staticmethod
    def _wait(daemon: Daemon, path: Path) -> None:
        deadline = time.monotonic() + UTTERANCE_TIMEOUT_SECONDS
        while not daemon.source_done.wait(POLL_SECONDS):
            if daemon.stopped.is_set():
                raise EvalError(f"{path}: the daemon stopped before the file was heard")
            if time.monotonic() > deadline:
                raise EvalError(f"{path}: not heard within {UTTERANCE_TIMEOUT_SECONDS:.0f}s")
        if not daemon.wait_idle(max(0.0, deadline - time.monotonic())):
            raise EvalError(f"{path}: a turn did not end within {UTTERANCE_TIMEOUT_SECONDS:.0f}s")


def _revision() -> str | None:
    """The work tree's commit, and which files of the daemon differ from it."""
    import subprocess

    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", *args],  # noqa: S607 - git from PATH
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout

    try:
        head = git("rev-parse", "--short", "HEAD").strip()
        changed = [
            line[3:] for line in git("status", "--porcelain", "--", "konak/daemon").splitlines()
        ]
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head} (uncommitted: {', '.join(changed)})" if changed else head


def eval_settings(work: Path, models: Path) -> Settings:
    """The daemon's defaults with the evaluation's names and areas."""
    from konak.daemon.settings import parse

    raw = {
        "device": {"tenant": TENANT, "device": DEVICE, "area": "kitchen"},
        "models": {"dir": str(models)},
        "audio": {"source": "none", "sink": "none"},
        "intent": {"slot_lists": {k: list(v) for k, v in SLOT_LISTS.items()}},
        "hub": {"queue_path": str(work / "queue.sqlite3")},
    }
    return parse(raw, base_dir=work, default_models_dir=models)


def evaluate(
    voices: Sequence[Voice],
    cases: Sequence[Case],
    *,
    cache: Path,
    models: Path,
    work: Path,
    realtime: bool = False,
    progress: Callable[[Heard], None] | None = None,
    voice_done: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Speak every case with every voice through the daemon; the results as a dict."""
    synth = Synthesizer(cache)
    for voice in voices:
        synth.check(voice)
    started = time.perf_counter()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    machine_facts = machine()
    settings = eval_settings(work, models)
    evaluator = Evaluator(settings, realtime=realtime)
    heard: list[Heard] = []
    per_voice = []
    for voice in voices:
        voice_started = time.perf_counter()
        evaluator.new_speaker()
        mine = []
        for case in cases:
            h = evaluator.hear(voice, case, synth.path(voice, case))
            mine.append(h)
            if progress is not None:
                progress(h)
        heard += mine
        summary = {
            "voice": voice.label,
            "description": voice.description,
            **summarize(mine),
            "seconds": round(time.perf_counter() - voice_started, 1),
        }
        per_voice.append(summary)
        if voice_done is not None:
            voice_done(summary)
    return {
        "machine": machine_facts,
        "started_at": started_at,
        "revision": _revision(),
        "settings": {
            "realtime": realtime,
            "wake_words": [w.model for w in settings.wake.words],
            "wake_threshold": [w.threshold for w in settings.wake.words],
            "stt": asdict(settings.stt),
            "vad": asdict(settings.vad),
            "intents": list(settings.intent.intents),
            "slot_lists": {k: list(v) for k, v in SLOT_LISTS.items()},
            "engines_load_seconds": {
                k: round(v, 2) for k, v in evaluator.engines.load_seconds.items()
            },
        },
        "corpus": {k.value: sum(1 for c in cases if c.kind is k) for k in Kind},
        "voices": per_voice,
        "totals": summarize(heard),
        "causes": CAUSES,
        "utterances": [asdict(h) for h in heard],
        "duration_seconds": round(time.perf_counter() - started, 1),
    }


def _describe(h: Heard) -> str:
    heard = h.transcript or (f"[{h.candidate}]" if h.candidate else "")
    if not h.runs:
        heard = "(no wake)"
    what = f"{h.intent} {h.slots}" if h.intent else (h.error or "no intent")
    return f"{h.voice:<18} {h.kind:<8} {h.verdict:<9} {h.text!r} -> {heard!r}: {what}"


def _voices(text: str) -> tuple[Voice, ...]:
    try:
        return parse_voices(text)
    except EvalError as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The options of ``python -m konak.bench.eval``."""
    parser = argparse.ArgumentParser(
        prog="python -m konak.bench.eval",
        description="Recognition across espeak-ng voices through the real daemon turn.",
    )
    parser.add_argument(
        "--voices",
        type=_voices,
        default=DEFAULT_VOICES,
        help="comma-separated espeak-ng voices, each optionally @words-per-minute "
        f"(default {','.join(v.label for v in DEFAULT_VOICES)})",
    )
    parser.add_argument(
        "--limit", type=_positive_int, help="only the first N utterances of each kind"
    )
    parser.add_argument(
        "--out", type=Path, help="output directory (default bench; bench/quick with --limit)"
    )
    parser.add_argument("--cache", type=Path, help="synthesised audio (default OUT/.cache/eval)")
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="play each file at the pace of a microphone (the live endpoint -> transcript "
        "latency; about five times as long)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per utterance")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation and write ``eval.json`` and ``eval.md``."""
    import tempfile

    from konak.bench.eval_report import render_markdown
    from konak.bench.rig import models_dir

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out: Path = args.out or (Path("bench/quick") if args.limit else Path("bench"))
    cases = select(args.limit)
    voices: tuple[Voice, ...] = args.voices
    print(
        f"eval: {len(cases)} utterances x {len(voices)} voices "
        f"({', '.join(v.label for v in voices)}) through the daemon turn ...",
        flush=True,
    )

    def progress(h: Heard) -> None:
        if args.verbose:
            print(_describe(h), flush=True)

    def voice_done(s: dict[str, Any]) -> None:
        print(
            f"{s['voice']}: {s['right']} of {s['commands']} commands right, "
            f"{s['false_accepts']} false accepts, {s['false_rejects']} false rejects "
            f"({s['seconds']} s)",
            flush=True,
        )

    try:
        with tempfile.TemporaryDirectory(prefix="konak-eval-") as work:
            results = evaluate(
                voices,
                cases,
                cache=args.cache or out / ".cache" / "eval",
                models=models_dir(),
                work=Path(work),
                realtime=args.realtime,
                progress=progress,
                voice_done=voice_done,
            )
    except KonakError as exc:
        print(f"konak eval: {exc.message} [{exc.code}]", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = render_markdown(results)
    (out / "eval.md").write_text(markdown)
    print(markdown)
    print(f"wrote {out / 'eval.json'} and {out / 'eval.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

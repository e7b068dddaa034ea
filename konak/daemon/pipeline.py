"""One voice turn as a run object that walks ordered stages and emits typed events.

The shape follows Home Assistant's assist_pipeline: a :class:`PipelineRun` per turn;
each stage runs inside :meth:`PipelineRun.stage`, which emits ``<stage>-start`` and
``<stage>-end`` (with ``duration_ms``), maps any failure to one ``error`` event with a
stable :class:`ErrorCode`, and the run always ends with exactly one ``run-end``.

A turn's stages, with the events each emits::

    run-start
    wake-start / wake-end            (not for a continued conversation)
    stt-start                        the decoder is fed while the person speaks
      vad-start / vad-end            endpointing, done by the audio loop
    stt-end
    intent-start / intent-end
    hub-start / hub-end              the intent is queued, the reply awaited
                                     (a local skill answers instead)
    tts-start / tts-end
    run-end

The audio loop never runs a stage: it hands each command's audio to the turn worker
through :class:`CommandAudio` and goes on listening.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from konak.daemon.audio import Samples
from konak.daemon.events import Event, EventBus, Stage
from konak.daemon.intent import Recognized
from konak.daemon.stt import SttEngine, Transcript
from konak.daemon.vad import Endpoint
from konak.errors import KonakError
from konak.protocol import Intent, Reply

logger = logging.getLogger(__name__)

FEED_SAMPLES: Final = 1280  # 80 ms: the most audio handed to the decoder at once
NOT_UNDERSTOOD: Final = "Sorry, I didn't catch that."
HUB_NOT_ANSWERING: Final = "The hub is not answering."
SOMETHING_WENT_WRONG: Final = "Sorry, something went wrong."
QUEUE_FAILED_TEXT: Final = "Sorry, I could not send that to the hub."


class ErrorCode(enum.StrEnum):
    """Why a turn failed; stable strings for logs, telemetry and the hub."""

    NO_SPEECH = "no_speech"  # nobody spoke after the wake word
    NOT_UNDERSTOOD = "not_understood"  # STT rejected the speech or heard nothing
    STT_FAILED = "stt_failed"
    INTENT_FAILED = "intent_failed"
    SKILL_FAILED = "skill_failed"
    QUEUE_FAILED = "queue_failed"  # the intent could not be written to the outbox
    HUB_TIMEOUT = "hub_timeout"
    TTS_FAILED = "tts_failed"
    INTERNAL = "internal_error"


STAGE_ERRORS: Final = {
    Stage.WAKE: ErrorCode.INTERNAL,
    Stage.VAD: ErrorCode.INTERNAL,
    Stage.STT: ErrorCode.STT_FAILED,
    Stage.INTENT: ErrorCode.INTENT_FAILED,
    Stage.HUB: ErrorCode.QUEUE_FAILED,
    Stage.TTS: ErrorCode.TTS_FAILED,
}

# What the device says after the error earcon; None: the earcon alone.
SPOKEN_ERRORS: Final[dict[ErrorCode, str | None]] = {
    ErrorCode.NO_SPEECH: None,
    ErrorCode.NOT_UNDERSTOOD: NOT_UNDERSTOOD,
    ErrorCode.STT_FAILED: NOT_UNDERSTOOD,
    ErrorCode.INTENT_FAILED: SOMETHING_WENT_WRONG,
    ErrorCode.SKILL_FAILED: SOMETHING_WENT_WRONG,
    ErrorCode.QUEUE_FAILED: QUEUE_FAILED_TEXT,
    ErrorCode.HUB_TIMEOUT: HUB_NOT_ANSWERING,
    ErrorCode.TTS_FAILED: None,  # the voice itself failed: say nothing more
    ErrorCode.INTERNAL: SOMETHING_WENT_WRONG,
}


class RunError(Exception):
    """Ends a run with ``code``; raised inside a stage or between stages."""

    def __init__(self, code: ErrorCode, message: str = "") -> None:
        super().__init__(message or code.value)
        self.code = code
        self.message = message


class RunCancelled(Exception):
    """The run was interrupted (barge-in, the stop word, shutdown)."""


@dataclass(eq=False)
class OpenStage:
    """A stage that has started and not yet ended."""

    stage: Stage
    started: float


class PipelineRun:
    """The events of one turn; thread-safe; ``run-end`` exactly once."""

    def __init__(
        self,
        turn_id: str,
        bus: EventBus,
        *,
        continued: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.turn_id = turn_id
        self.bus = bus
        self.continued = continued
        self.clock = clock
        self.cancelled = threading.Event()
        self.error: ErrorCode | None = None
        self._ended = False
        self._open: list[OpenStage] = []
        self._lock = threading.Lock()

    def emit(self, type_: str, **data: Any) -> None:
        """Emit one event of this run."""
        self.bus.emit(Event(type_, self.turn_id, data, at=self.clock()))

    def start(self) -> None:
        """``run-start``."""
        self.emit("run-start", continued=self.continued)

    def open_stage(self, stage: Stage, **data: Any) -> OpenStage:
        """``<stage>-start`` now; the stage ends with :meth:`close_stage` (possibly on
        another thread: the audio loop opens the listening stages, the worker closes STT)."""
        self.emit(f"{stage}-start", **data)
        opened = OpenStage(stage, self.clock())
        with self._lock:
            self._open.append(opened)
        return opened

    def close_stage(self, opened: OpenStage, *, at: float | None = None, **data: Any) -> None:
        """``<stage>-end`` with ``data`` and the duration, once; ``at`` backdates the end."""
        with self._lock:
            if opened not in self._open:
                return
            self._open.remove(opened)
        end = at if at is not None else self.clock()
        duration_ms = round(max(0.0, end - opened.started) * 1000, 3)
        self.bus.emit(
            Event(f"{opened.stage}-end", self.turn_id, {**data, "duration_ms": duration_ms}, at=end)
        )

    @contextmanager
    def stage(self, stage: Stage, **data: Any) -> Iterator[dict[str, Any]]:
        """Run one stage: ``<stage>-start`` now, ``<stage>-end`` with what the block put
        into the yielded dict and its duration; an exception becomes a :class:`RunError`
        with the stage's code (after ``<stage>-end``, which carries the code too)."""
        with self.within(self.open_stage(stage, **data)) as end:
            yield end

    @contextmanager
    def within(self, opened: OpenStage) -> Iterator[dict[str, Any]]:
        """The body of an open stage; closes it as :meth:`stage` does."""
        end: dict[str, Any] = {}
        try:
            yield end
        except RunCancelled:
            self.close_stage(opened, **end, interrupted=True)
            raise
        except RunError as exc:
            self.close_stage(opened, **end, error=exc.code.value)
            raise
        except Exception as exc:  # the stage boundary: any engine failure ends the turn
            code = STAGE_ERRORS[opened.stage]
            logger.exception("turn %s: the %s stage failed", self.turn_id, opened.stage.value)
            self.close_stage(opened, **end, error=code.value)
            raise RunError(code, f"{type(exc).__name__}: {exc}") from exc
        self.close_stage(opened, **end)

    def fail(self, error: RunError) -> None:
        """The one ``error`` event of this run."""
        self.error = error.code
        data: dict[str, Any] = {"code": error.code.value}
        if error.message and error.message != error.code.value:
            data["message"] = error.message
        self.emit("error", **data)

    def end(self, **data: Any) -> None:
        """``run-end``, once; later calls do nothing. A stage still open is closed first
        (every ``-start`` has its ``-end``)."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            still_open = list(reversed(self._open))
        for opened in still_open:
            self.close_stage(opened, interrupted=True)
        self.emit("run-end", **data)

    @property
    def ended(self) -> bool:
        """Whether ``run-end`` was emitted."""
        with self._lock:
            return self._ended

    def cancel(self) -> None:
        """Interrupt the run: the stage waiting now gives up and the run ends."""
        self.cancelled.set()


@dataclass(frozen=True)
class Endpointed:
    """How the command ended, found by the audio loop."""

    endpoint: Endpoint | None  # None: capture stopped before an endpoint (shutdown)
    audio_seconds: float  # where in the audio stream (capture timeline)
    wall_time: float  # epoch seconds (the intent's speech_ended_at)
    found_at: float  # time.monotonic() when the audio loop found it


class CommandAudio:
    """The command's audio, from the audio loop to the turn worker, as it is spoken."""

    def __init__(self, stt: OpenStage | None = None) -> None:
        self._queue: queue.SimpleQueue[Samples | Endpointed] = queue.SimpleQueue()
        self.result: Endpointed | None = None
        self.samples = 0  # taken by the worker so far
        self.pushed = 0  # given by the audio loop so far
        # Set by the worker when the decoder's partial result is already a whole command:
        # the audio loop may then end the command after a short pause.
        self.complete = threading.Event()
        self.stt = stt  # the STT stage, opened by the audio loop

    def push(self, samples: Samples) -> None:
        """More command audio (audio loop)."""
        if samples.size:
            self.pushed += samples.size
            self._queue.put(samples)

    def end(self, endpoint: Endpoint | None, audio_seconds: float) -> None:
        """The command is over (audio loop)."""
        self._queue.put(Endpointed(endpoint, audio_seconds, time.time(), time.monotonic()))

    def __iter__(self) -> Iterator[Samples]:
        """The audio as it arrives; ends at the endpoint (turn worker)."""
        while True:
            item = self._queue.get()
            if isinstance(item, Endpointed):
                self.result = item
                return
            self.samples += item.size
            yield item


class HubPort(Protocol):
    """How a turn reaches the hub: queue the intent, then wait for its reply."""

    def send(self, intent: Intent) -> None: ...

    def wait_reply(self, turn_id: str, timeout: float, cancelled: threading.Event) -> Reply | None:
        """The reply, or None after ``timeout``; raises :class:`RunCancelled`."""
        ...

    def queued(self) -> int: ...


class SpeakPort(Protocol):
    """Speaks a text and reports how it went (sentences, interrupted, error)."""

    def __call__(self, text: str, cancelled: threading.Event) -> tuple[int, bool, str | None]: ...


@dataclass
class TurnContext:
    """What a turn needs, snapshotted when it starts (a reload swaps it between turns)."""

    stt: SttEngine
    recognize: Callable[[str], Recognized | None]
    is_local: Callable[[str], bool]
    answer_locally: Callable[[str, dict[str, Any]], str]
    build_intent: Callable[[str, Transcript, Recognized | None, Endpointed], Intent]
    hub: HubPort | None  # None: offline (``konak daemon transcribe``): nothing is sent
    speak: SpeakPort
    reply_timeout_seconds: float
    quick_endpoint: bool = True  # end early when the partial result is a whole command
    stt_lock: threading.Lock = field(default_factory=threading.Lock)
    intent_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class TurnOutcome:
    """How a turn ended, for the caller (continued conversation)."""

    reply: Reply | None = None
    error: ErrorCode | None = None
    interrupted: bool = False

    @property
    def continue_conversation(self) -> bool:
        """Whether the next turn starts without a wake word."""
        return (
            self.reply is not None
            and self.reply.continue_conversation
            and self.error is None
            and not self.interrupted
        )


def listen(run: PipelineRun, wake: tuple[str, float] | None) -> tuple[CommandAudio, OpenStage]:
    """The start of a turn, on the audio loop: ``run-start``, the wake word, and the STT
    and VAD stages opened; returns the command's audio channel and the VAD stage, which
    the audio loop closes at the endpoint (:func:`endpoint`)."""
    run.start()
    if wake is not None:
        with run.stage(Stage.WAKE) as end:
            end.update(word=wake[0], score=wake[1])
    command = CommandAudio(run.open_stage(Stage.STT))
    return command, run.open_stage(Stage.VAD)


def endpoint(
    run: PipelineRun,
    command: CommandAudio,
    vad: OpenStage,
    found: Endpoint | None,
    audio_seconds: float,
    command_seconds: float,
    *,
    quick: bool = False,
) -> None:
    """The end of speech, on the audio loop: ``vad-end`` now (the earcon plays at once),
    then the worker is told. ``quick``: ended early because the command was complete."""
    data: dict[str, Any] = {
        "endpoint": found.value if found else None,
        "command_seconds": round(command_seconds, 3),
    }
    if quick:
        data["quick"] = True
    run.close_stage(vad, **data)
    command.end(found, audio_seconds)


def execute(run: PipelineRun, ctx: TurnContext, command: CommandAudio) -> TurnOutcome:
    """The rest of the turn, on its worker, after :func:`listen`: STT as the audio
    arrives, then intent, hub or local skill, reply; always exactly one ``run-end``."""
    reply: Reply | None = None
    interrupted = False
    try:
        try:
            transcript, endpointed = _transcribe(run, ctx, command)
            if not transcript.text:
                raise RunError(ErrorCode.NOT_UNDERSTOOD)
            _go_on(run)
            with run.stage(Stage.INTENT, text=transcript.text) as end, ctx.intent_lock:
                recognized = ctx.recognize(transcript.text)
                end.update(
                    intent=recognized.name if recognized else None,
                    slots=dict(recognized.slots) if recognized else {},
                )
            _go_on(run)
            if recognized is not None and ctx.is_local(recognized.name):
                with run.stage(Stage.HUB, local=True) as end:
                    answer = ctx.answer_locally(recognized.name, dict(recognized.slots))
                    end.update(outcome="local")
                _speak(run, ctx, answer)
            elif ctx.hub is None:
                with run.stage(Stage.HUB, offline=True) as end:
                    end.update(outcome="offline")
            else:
                reply = _ask_hub(run, ctx, ctx.hub, transcript, recognized, endpointed)
                if reply.speak:
                    _speak(run, ctx, reply.text)
        except RunError as exc:
            run.fail(exc)
            spoken = SPOKEN_ERRORS.get(exc.code)
            if spoken is not None and not run.cancelled.is_set():
                # The voice may fail while apologising: its stage says so.
                with contextlib.suppress(RunError):
                    _speak(run, ctx, spoken)
    except RunCancelled:
        interrupted = True
    finally:
        if interrupted:
            run.end(interrupted=True)
        else:
            run.end()
    return TurnOutcome(reply=reply, error=run.error, interrupted=interrupted)


def _go_on(run: PipelineRun) -> None:
    """Between stages: a cancelled run (barge-in, stop word, shutdown) goes no further."""
    if run.cancelled.is_set():
        raise RunCancelled


def _transcribe(
    run: PipelineRun, ctx: TurnContext, command: CommandAudio
) -> tuple[Transcript, Endpointed]:
    assert command.stt is not None  # opened by listen()
    with run.within(command.stt) as stt_end, ctx.stt_lock:
        stream = ctx.stt.start()
        finished = False
        try:
            watch = _CompletionWatch(ctx, stream, command)
            for samples in command:
                # In 80 ms pieces: a decoder holds the GIL while it works, and the thread
                # reading the microphone must get a turn between pieces.
                for offset in range(0, samples.size, FEED_SAMPLES):
                    stream.feed(samples[offset : offset + FEED_SAMPLES])
                watch.check()
            result = command.result
            assert result is not None  # the iterator ends only at an Endpointed
            if result.endpoint is None:
                raise RunCancelled
            finished = True
            transcript = stream.finish()
        finally:
            if not finished:
                _abandon(stream)
        stt_end.update(text=transcript.text, rejected=transcript.rejected)
        if result.endpoint is Endpoint.NO_SPEECH:
            raise RunError(ErrorCode.NO_SPEECH)
    return transcript, result


def _abandon(stream: Any) -> None:
    """End a stream whose result nobody wants, so the decoder is ready for the next turn."""
    try:
        stream.finish()
    except Exception:  # the turn is already failing or cancelled: this only tidies up
        logger.warning("the decoder could not be reset after an interrupted command")


class _CompletionWatch:
    """Tells the audio loop when the decoder's partial result is a complete command."""

    def __init__(self, ctx: TurnContext, stream: Any, command: CommandAudio) -> None:
        self.ctx, self.command = ctx, command
        self.partial: Callable[[], str] | None = (
            getattr(stream, "partial", None) if ctx.quick_endpoint else None
        )
        self.last = ""

    def check(self) -> None:
        if self.partial is None or self.command.complete.is_set():
            return
        text = self.partial()
        if not text or text == self.last:
            return
        self.last = text
        with self.ctx.intent_lock:
            complete = self.ctx.recognize(text) is not None
        if complete:
            logger.debug("partial %r is a complete command", text)
            self.command.complete.set()


def _ask_hub(
    run: PipelineRun,
    ctx: TurnContext,
    hub: HubPort,
    transcript: Transcript,
    recognized: Recognized | None,
    endpointed: Endpointed,
) -> Reply:
    with run.stage(Stage.HUB, queued=hub.queued() + 1) as end:
        intent = ctx.build_intent(run.turn_id, transcript, recognized, endpointed)
        try:
            hub.send(intent)
        except KonakError as exc:
            raise RunError(ErrorCode.QUEUE_FAILED, exc.message) from exc
        reply = hub.wait_reply(run.turn_id, ctx.reply_timeout_seconds, run.cancelled)
        if reply is None:
            logger.warning(
                "no reply to turn %s within %.1fs", run.turn_id, ctx.reply_timeout_seconds
            )
            raise RunError(ErrorCode.HUB_TIMEOUT)
        end.update(outcome=reply.outcome)
    return reply


def _speak(run: PipelineRun, ctx: TurnContext, text: str) -> None:
    _go_on(run)
    with run.stage(Stage.TTS, text=text) as end:
        sentences, interrupted, error = ctx.speak(text, run.cancelled)
        end.update(text=text, sentences=sentences, interrupted=interrupted)
        if error is not None:
            raise RunError(ErrorCode.TTS_FAILED, error)
    if interrupted:
        raise RunCancelled

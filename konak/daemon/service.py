"""The daemon: the audio loop, a turn worker per voice turn, the hub link and the speaker.

The audio loop consumes capture's chunks and does only what must keep pace with the
microphone: wake word detection and endpointing (both a few milliseconds per chunk).
When a wake word is heard it starts a :class:`~konak.daemon.pipeline.PipelineRun` on a
turn worker thread and streams the command's audio to it; speech recognition, intent
recognition, the hub and the reply all happen on that worker while the loop goes on
listening. MQTT, earcons, systemd status, telemetry and logs subscribe to the runs'
events (:mod:`konak.daemon.subscribers`).
"""

from __future__ import annotations

import collections
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numpy as np

from konak import __version__
from konak.daemon import memory
from konak.daemon.audio import CHUNK_SAMPLES, RATE_HZ, AudioChunk, AudioSink, AudioSource, Samples
from konak.daemon.capture import Capture
from konak.daemon.engines import Engines, build_intents, build_stt, word_name
from konak.daemon.errors import QueueError
from konak.daemon.events import Event, EventBus, Stage
from konak.daemon.feedback import Playback, Speaker
from konak.daemon.hublink import HubLink
from konak.daemon.intent import Recognized
from konak.daemon.models_update import ModelUpdater, digests, models_in_use
from konak.daemon.notify import Notifier
from konak.daemon.outbox import Outbox
from konak.daemon.pipeline import (
    CommandAudio,
    Endpointed,
    HubPort,
    OpenStage,
    PipelineRun,
    RunCancelled,
    TurnContext,
    endpoint,
    execute,
    listen,
)
from konak.daemon.settings import Settings, intent_expiry_seconds
from konak.daemon.skills import LocalSkills
from konak.daemon.stt import Transcript
from konak.daemon.subscribers import Earcons, EventLogger, Latencies, SystemdStatus, WakePublisher
from konak.daemon.telemetry import DeviceFigures, TelemetryReporter
from konak.daemon.vad import (
    QUICK_END_SILENCE_SECONDS,
    Endpoint,
    Endpointer,
)
from konak.daemon.wake import Detection, WakeDetector
from konak.daemon.warmup import warm_intents, warm_stt
from konak.edge_models.store import ModelStore
from konak.errors import KonakError
from konak.protocol import Cmd, Config, Intent, Message, ModelsUpdate, Reply, Status

logger = logging.getLogger(__name__)

TIMER_DONE: Final = "Your timer is done."
WAKE_TAIL_SECONDS: Final = 0.8  # how long speech after a detection may be the wake word
REPLY_POLL_SECONDS: Final = 0.1  # a cancelled run stops waiting for its reply this quickly
JOIN_SECONDS: Final = 5.0


def new_turn_id() -> str:
    """A unique, URL-safe turn id."""
    return "t-" + secrets.token_hex(8)


@dataclass
class _Turn:
    """A run in progress and its worker."""

    run: PipelineRun
    thread: threading.Thread | None = None
    handed_off: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Listening:
    """The command being spoken: the audio loop streams it to the turn worker."""

    turn: _Turn
    command: CommandAudio
    vad: OpenStage
    wake_at: int  # samples of pre-roll fed ahead of what followed the detection


class Replies:
    """Replies from the hub, handed to the turn waiting for each."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[Reply]] = {}
        self._cond = threading.Condition()

    def expect(self, turn_id: str) -> None:
        """Register a turn before its intent is sent (a fast reply is not lost)."""
        with self._cond:
            self._waiting.setdefault(turn_id, [])

    def resolve(self, reply: Reply) -> bool:
        """Deliver ``reply``; False if no turn waits for it.

        A ``repeat`` (the hub's reply sent again for an intent that arrived again) is
        delivered like the first; a ``duplicate`` (older hubs' answer to an intent sent again
        while the first copy runs) is not a reply: the turn keeps waiting for the real one."""
        with self._cond:
            box = self._waiting.get(reply.turn_id)
            if box is None:
                return False
            if reply.outcome == "duplicate":
                logger.info("turn %s: the hub already has it; waiting for its reply", reply.turn_id)
                return True
            box.append(reply)
            self._cond.notify_all()
            return True

    def wait(self, turn_id: str, timeout: float, cancelled: threading.Event) -> Reply | None:
        """The reply to ``turn_id`` or None after ``timeout``; :class:`RunCancelled` if the
        run is cancelled first."""
        deadline = time.monotonic() + timeout
        try:
            with self._cond:
                while True:
                    box = self._waiting.get(turn_id)
                    if box:
                        return box[0]
                    if cancelled.is_set():
                        raise RunCancelled
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self._cond.wait(min(left, REPLY_POLL_SECONDS))
        finally:
            with self._cond:
                self._waiting.pop(turn_id, None)

    def wake_all(self) -> None:
        """Let every waiter re-check (after cancelling runs)."""
        with self._cond:
            self._cond.notify_all()


class _HubPort:
    """The hub as a turn sees it: the durable outbox, then the reply."""

    def __init__(self, daemon: Daemon, outbox: Outbox) -> None:
        self.daemon, self.outbox = daemon, outbox

    def send(self, intent: Intent) -> None:
        if self.daemon.stopping:
            raise RunCancelled  # the outbox is closing: the turn ends with the daemon
        self.daemon.replies.expect(intent.turn_id)
        self.outbox.put(intent.turn_id, intent.topic, intent.to_payload(), intent.expires_at)
        self.daemon._handed_off(intent.turn_id)

    def wait_reply(self, turn_id: str, timeout: float, cancelled: threading.Event) -> Reply | None:
        """The reply, or None after ``timeout``: the person is then told the turn failed, so
        its intent is withdrawn and never sent again (it must not run minutes later)."""
        reply = self.daemon.replies.wait(turn_id, timeout, cancelled)
        if reply is None:
            detail = f"no reply within {timeout:.1f}s; the person was told it failed"
            try:
                withdrawn = self.outbox.withdraw(turn_id, detail)
            except QueueError:
                logger.exception("cannot withdraw intent %s from the queue", turn_id)
            else:
                if withdrawn is not None:
                    logger.warning("intent %s withdrawn: %s", turn_id, detail)
        return reply

    def queued(self) -> int:
        if self.daemon.stopping:
            return 0
        try:
            return len(self.outbox)
        except sqlite3.Error:  # closed under a turn that outlived the shutdown's wait
            return 0


class Daemon:
    """One device: engines loaded once, an audio source and sink, the hub link.

    ``offline`` runs without a broker (``konak daemon transcribe``): no intent is sent,
    unless ``hub_port`` stands in for the hub (unit tests).
    """

    def __init__(
        self,
        settings: Settings,
        engines: Engines,
        source: AudioSource,
        sink: AudioSink,
        *,
        notifier: Notifier | None = None,
        offline: bool = False,
        hub_port: HubPort | None = None,
    ) -> None:
        self.settings = settings
        self.engines = engines
        self.source = source
        self.sink = sink
        # Before any of the daemon's threads exist (see memory.py).
        memory.limit_arenas()
        self.capture = Capture(source)
        self.bus = EventBus()
        self.notifier = notifier or Notifier({})
        self.speaker = Speaker(sink, engines.tts, earcons=settings.tts.earcons)
        self.skills = LocalSkills(self._timer_done)
        self.replies = Replies()
        self.latencies = Latencies()
        self.systemd = SystemdStatus(self.notifier)
        self.stopped = threading.Event()
        self.source_done = threading.Event()  # the source ended and each command was handled
        self._stop = threading.Event()
        self._turns: dict[str, _Turn] = {}
        self._wakes: dict[str, Detection] = {}  # the wake word of each turn in progress
        self._turns_lock = threading.Lock()
        self._continue = threading.Event()
        self._reload_lock = threading.Lock()
        self._stt_lock = threading.Lock()
        self._intent_lock = threading.Lock()
        self._last_watchdog = 0.0
        self.outbox: Outbox | None = None
        self.hub: HubLink | None = None
        self.config_revision: int | None = None  # of the hub's config, once one is applied
        # update_models: the engines an update loaded wait here for a moment between turns
        self.models_update: ModelsUpdate | None = None  # the last update's result
        self.updater = ModelUpdater(lambda: self.settings)
        self._updating = threading.Lock()
        self._pending_engines: Engines | None = None
        self._engines_swapped = threading.Event()
        self._model_digests = self._running_digests()
        self.telemetry: TelemetryReporter | None = None
        self._hub_port: HubPort | None = hub_port
        if not offline:
            self.outbox = Outbox(settings.hub.queue_path)
            self.hub = HubLink(
                settings.device, settings.hub, self.outbox, self._on_hub, self.status
            )
            self._hub_port = _HubPort(self, self.outbox)
            self.telemetry = TelemetryReporter(
                settings.device,
                self.figures,
                self.hub.publish,
                settings.hub.telemetry_interval_seconds,
            )
            self.bus.subscribe(WakePublisher(settings.device, self.hub.publish))
        for subscriber in (EventLogger(), self.latencies, self.systemd, Earcons(self.speaker)):
            self.bus.subscribe(subscriber)
        self.detector = WakeDetector(
            engines.wake, self._thresholds(settings), settings.wake.refractory_seconds
        )
        self.endpointer = Endpointer(
            engines.vad,
            threshold=settings.vad.threshold,
            end_silence_seconds=settings.vad.end_silence_seconds,
            max_command_seconds=settings.vad.max_command_seconds,
            no_speech_timeout_seconds=settings.vad.no_speech_timeout_seconds,
        )
        preroll_chunks = max(1, round(settings.wake.preroll_seconds * RATE_HZ / CHUNK_SAMPLES))
        self._preroll: collections.deque[Samples] = collections.deque(maxlen=preroll_chunks)

    @staticmethod
    def _thresholds(settings: Settings) -> dict[str, float]:
        thresholds = {word_name(w.model): w.threshold for w in settings.wake.words}
        if settings.wake.stop_word is not None:
            thresholds[word_name(settings.wake.stop_word)] = 0.5
        return thresholds

    # ------------------------------------------------------------------ lifecycle
    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    @property
    def state(self) -> str:
        """What the daemon is doing now (as in systemd's ``STATUS=``)."""
        return self.systemd.state

    def status(self) -> Status:
        """The retained status message."""
        import onnxruntime  # type: ignore[import-untyped]

        s = self.settings
        return Status(
            tenant=s.device.tenant,
            device=s.device.device,
            state="online",
            name=s.device.name,
            area=s.device.area,
            language=s.device.language,
            # the models the engines run, by digest: an update_models shows here
            versions={
                "konak": __version__,
                "onnxruntime": onnxruntime.__version__,
                **{f"model {m}": d for m, d in self._model_digests.items()},
            },
            models=sorted(
                {w.model for w in s.wake.words} | {s.vad.model, s.stt.model, s.tts.model}
            ),
            capabilities=["wake", "stt", "intent", "tts", "timers", "announce"],
            config_revision=self.config_revision,
            models_update=self.models_update,
        )

    def figures(self) -> DeviceFigures:
        """The daemon's counters for telemetry (a snapshot, not the daemon)."""
        outbox = self.outbox
        return DeviceFigures(
            queue_depth=len(outbox) if outbox is not None else 0,
            dead_letters=outbox.dead_letter_count() if outbox is not None else 0,
            expired_intents=outbox.expired_count() if outbox is not None else 0,
            dropped_audio_chunks=self.capture.stats.dropped_chunks,
            stage_latency_ms=self.latencies.snapshot(),
            model_load_seconds=dict(self.engines.load_seconds),
        )

    def run(self) -> int:
        """Serve until :meth:`stop`; returns the exit status."""
        if self.hub is not None:
            self.hub.start()
        if self.telemetry is not None:
            self.telemetry.start()
        self.systemd.state = "listening"  # before READY: a SIGHUP right after it reports this
        self.notifier.notify(READY="1", STATUS="listening")
        try:
            self._audio_loop()
            error = self.capture.error
            if error is not None and not self._stop.is_set():
                logger.error("the audio source failed (%s); stopping", error)
                return 1
            self._wait_handed_off()
            self.source_done.set()
            while not self._stop.is_set():
                self._watchdog(force=True)
                if self._pending_engines is not None:
                    self._swap_engines()
                self._stop.wait(self.settings.watchdog_interval_seconds / 2)
        finally:
            self._shutdown()
        return 0

    def stop(self) -> None:
        """Ask :meth:`run` to finish (from a signal handler or another thread)."""
        self._stop.set()
        self.capture.close()

    def continue_without_wake(self) -> None:
        """Start the next turn without a wake word (a continued conversation)."""
        self._continue.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every turn has ended; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        for turn in self._active():
            if turn.thread is not None:
                turn.thread.join(max(0.0, deadline - time.monotonic()))
        return not self._active()

    def _shutdown(self) -> None:
        self.notifier.notify(STOPPING="1", STATUS="stopping")
        self.systemd.state = "stopping"
        self.skills.cancel_all()
        self._interrupt()
        for turn in self._active():
            if turn.thread is not None and turn.thread is not threading.current_thread():
                turn.thread.join(JOIN_SECONDS)
        if self.telemetry is not None:
            self.telemetry.stop()
        if self.hub is not None:
            self.hub.stop()
        self.speaker.stop()
        self.speaker.close()
        self.sink.close()
        if self.outbox is not None:
            self.outbox.close()
        self.stopped.set()

    def _watchdog(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_watchdog >= self.settings.watchdog_interval_seconds / 2:
            self._last_watchdog = now
            self.notifier.notify(WATCHDOG="1")

    # ------------------------------------------------------------------ turns
    def _active(self) -> list[_Turn]:
        with self._turns_lock:
            return list(self._turns.values())

    def _handed_off(self, turn_id: str) -> None:
        with self._turns_lock:
            turn = self._turns.get(turn_id)
        if turn is not None:
            turn.handed_off.set()

    def _wait_handed_off(self) -> None:
        """Wait until each turn has sent its intent or ended (the source has ended)."""
        for turn in self._active():
            while not turn.handed_off.wait(0.5) and not self._stop.is_set():
                self._watchdog()

    def _interrupt(self) -> None:
        """Stop playback and cancel every turn in progress (barge-in, stop word, stop)."""
        for turn in self._active():
            turn.run.cancel()
        self.replies.wake_all()
        self.speaker.stop()

    def _context(self) -> TurnContext:
        """What the next turn uses, read once: a reload swaps engines between turns."""
        engines, settings = self.engines, self.settings
        return TurnContext(
            stt=engines.stt,
            recognize=engines.intents.recognize,
            is_local=self.skills.handles,
            answer_locally=self.skills.answer,
            build_intent=lambda turn_id, transcript, recognized, endpointed: self._intent(
                settings, turn_id, transcript, recognized, endpointed
            ),
            hub=self._hub_port,
            speak=self._speak,
            reply_timeout_seconds=settings.hub.reply_timeout_seconds,
            stt_lock=self._stt_lock,
            intent_lock=self._intent_lock,
        )

    def _intent(
        self,
        settings: Settings,
        turn_id: str,
        transcript: Transcript,
        recognized: Recognized | None,
        endpointed: Endpointed,
    ) -> Intent:
        d = settings.device
        name = recognized.name if recognized else None
        wake = self._wakes.get(turn_id)
        return Intent(
            tenant=d.tenant,
            device=d.device,
            turn_id=turn_id,
            text=transcript.text,
            intent=name,
            slots=dict(recognized.slots) if recognized else {},
            language=d.language,
            area=d.area,
            wake_word=wake.word if wake else None,
            wake_score=wake.score if wake else None,
            speech_ended_at=endpointed.wall_time,
            continued=wake is None,
            # Never longer than the turn waits for its reply: once the person has heard that
            # the hub is not answering, the hub must not run it.
            expires_at=time.time()
            + min(intent_expiry_seconds(settings.hub, name), settings.hub.reply_timeout_seconds),
        )

    def _speak(self, text: str, cancelled: threading.Event) -> tuple[int, bool, str | None]:
        playback = self.speaker.say(text)
        playback.wait()
        return playback.sentences, playback.interrupted, playback.error

    def _start_turn(self, wake: Detection | None) -> _Turn:
        run = PipelineRun(new_turn_id(), self.bus, continued=wake is None)
        turn = _Turn(run)
        with self._turns_lock:
            self._turns[run.turn_id] = turn
        if wake is not None:
            self._wakes[run.turn_id] = wake
        return turn

    def _work(self, turn: _Turn, command: CommandAudio) -> None:
        """The turn worker: one run, then tidy up."""
        run = turn.run
        try:
            outcome = execute(run, self._context(), command)
        except Exception:  # the worker's supervisor: the daemon outlives any turn
            logger.exception("turn %s failed unexpectedly", run.turn_id)
            run.end()
            return
        finally:
            turn.handed_off.set()
            with self._turns_lock:
                self._turns.pop(run.turn_id, None)
            self._wakes.pop(run.turn_id, None)
        if outcome.continue_conversation and not self._stop.is_set():
            self._continue.set()
            return
        with self._turns_lock:
            idle = not self._turns
        if idle:
            # What the turn's decoders and piper freed goes back to the system.
            memory.release_free_memory()

    # ------------------------------------------------------------------ audio loop
    def _audio_loop(self) -> None:
        listening: _Listening | None = None
        suppressed = False
        try:
            for chunk in self.capture.chunks():
                self._watchdog()
                if self._stop.is_set():
                    return
                if listening is None and self._pending_engines is not None:
                    self._swap_engines()
                if chunk is None:
                    continue
                if listening is not None:
                    listening = self._listen(listening, chunk)
                    continue
                playing = self.speaker.speaking.is_set()
                if playing and not self.settings.wake.barge_in:
                    suppressed = True
                    self._stop_word(chunk)
                    continue
                if suppressed:
                    # Forget audio heard during playback so the reply cannot wake the device.
                    suppressed = False
                    self.detector.reset()
                    self._preroll.clear()
                if self._continue.is_set():
                    self._continue.clear()
                    listening = self._listen(self._begin(None), chunk)
                    continue
                self._preroll.append(chunk.samples)
                detection = self.detector.process(chunk.samples, chunk.start_seconds)
                if detection is None:
                    continue
                if detection.word == self._stop_word_name():
                    logger.info("stop word heard")
                    self._interrupt()
                    continue
                logger.info(
                    "wake word %s (%.2f) at %.2fs",
                    detection.word,
                    detection.score,
                    chunk.start_seconds,
                )
                if playing:
                    logger.info("barge-in: interrupting playback for a new turn")
                    self._interrupt()
                listening = self._begin(detection)
        finally:
            if listening is not None:
                self._source_ended(listening)

    def _source_ended(self, listening: _Listening) -> None:
        """The audio ended mid-command: a stop cancels the turn; the end of a file or
        stream is the end of speech."""
        if self._stop.is_set():
            self._endpoint(listening, None, 0.0)
            return
        state = Endpoint.END if self.endpointer.speech_seen else Endpoint.NO_SPEECH
        self._endpoint(listening, state, self.capture.stats.chunks * CHUNK_SAMPLES / RATE_HZ)

    def _stop_word_name(self) -> str | None:
        stop = self.settings.wake.stop_word
        return word_name(stop) if stop is not None else None

    def _stop_word(self, chunk: AudioChunk) -> None:
        name = self._stop_word_name()
        if name is None:
            return
        detection = self.detector.process(chunk.samples, chunk.start_seconds)
        if detection is not None and detection.word == name:
            logger.info("stop word heard: interrupting playback")
            self._interrupt()

    def _begin(self, wake: Detection | None) -> _Listening:
        """Start a turn: its worker decodes the pre-roll (which holds the wake word) and
        then the command as it is spoken. Where the command starts is the decoder's to
        find: the grammar lets the wake word come first (see grammar.py), so a command
        run straight on from the wake word loses nothing."""
        turn = self._start_turn(wake)
        command, vad = listen(turn.run, (wake.word, wake.score) if wake else None)
        self.endpointer.reset(skip_tail_seconds=WAKE_TAIL_SECONDS if wake is not None else 0.0)
        preroll = list(self._preroll) if wake is not None else []
        self._preroll.clear()
        for samples in preroll:
            # The VAD's state follows the speech; these frames do not count as command.
            self.endpointer.prime(samples)
        listening = _Listening(turn, command, vad, sum(s.size for s in preroll))
        turn.thread = threading.Thread(
            target=self._work,
            args=(turn, command),
            name=f"konak-turn-{turn.run.turn_id}",
            daemon=True,
        )
        turn.thread.start()
        if preroll:
            command.push(np.concatenate(preroll))
        return listening

    def _listen(self, listening: _Listening, chunk: AudioChunk) -> _Listening | None:
        if listening.command.complete.is_set() and not self.endpointer.quick:
            self.endpointer.quick_end(QUICK_END_SILENCE_SECONDS)
        state = self.endpointer.process(chunk.samples)
        listening.command.push(chunk.samples)
        ended = state not in (Endpoint.WAITING, Endpoint.SPEAKING)
        if not ended:
            return listening
        # The wake engine heard nothing while the command was spoken: start it afresh
        # so the features of the last wake word cannot fire again.
        self.detector.reset()
        self._endpoint(listening, state, chunk.start_seconds + chunk.samples.size / RATE_HZ)
        return None

    def _endpoint(self, listening: _Listening, found: Endpoint | None, at: float) -> None:
        seconds = (listening.command.pushed - listening.wake_at) / RATE_HZ
        endpoint(
            listening.turn.run,
            listening.command,
            listening.vad,
            found,
            at,
            seconds,
            quick=found is Endpoint.END and self.endpointer.quick,
        )

    # ------------------------------------------------------------------ outside turns
    def _announce(self, text: str, turn_id: str) -> None:
        """Speak outside a turn (announcements, timers), with tts events."""
        self.bus.emit(Event(f"{Stage.TTS}-start", turn_id, {"text": text}))
        started = time.monotonic()

        def done(playback: Playback) -> None:
            data: dict[str, Any] = {
                "text": text,
                "sentences": playback.sentences,
                "interrupted": playback.interrupted,
                "duration_ms": round((time.monotonic() - started) * 1000, 3),
            }
            if playback.error is not None:
                data["error"] = "tts_failed"
            self.bus.emit(Event(f"{Stage.TTS}-end", turn_id, data))

        self.speaker.say(text, on_done=done)

    def _timer_done(self) -> None:
        self.speaker.earcon("timer")
        self._announce(TIMER_DONE, "timer")

    # ------------------------------------------------------------------ from the hub
    def _on_hub(self, message: Message) -> None:
        if isinstance(message, Reply):
            if not self.replies.resolve(message):
                logger.info(
                    "reply to turn %s (%s) came after the turn ended; not spoken",
                    message.turn_id,
                    message.outcome,
                )
        elif isinstance(message, Cmd):
            self._on_cmd(message)
        elif isinstance(message, Config):
            threading.Thread(
                target=self._apply_config_safely, args=(message,), name="konak-reload", daemon=True
            ).start()

    def _on_cmd(self, cmd: Cmd) -> None:
        if cmd.action == "announce" and cmd.text:
            self._announce(cmd.text, cmd.command_id)
        elif cmd.action == "stop":
            self._interrupt()
        elif cmd.action == "update_models":
            self.update_models_in_background(cmd.command_id, cmd.model_set)

    # ------------------------------------------------------------------ update_models
    def _running_digests(self) -> dict[str, str]:
        """The digest of each model the engines were loaded from (as the store has it)."""
        try:
            return digests(ModelStore(self.settings.models_dir), models_in_use(self.settings))
        except (KonakError, OSError):
            return {}

    def update_models_in_background(
        self, command_id: str, model_set: str | None
    ) -> threading.Thread | None:
        """Pull, verify and load on a thread of its own; the audio loop swaps the engines
        between turns. One update at a time: another command meanwhile is refused."""
        if not self._updating.acquire(blocking=False):
            logger.warning("update_models %s refused: an update is in progress", command_id)
            self._report_update(
                ModelsUpdate(
                    command_id=command_id,
                    outcome="failed",
                    error="update_in_progress",
                    detail="another update_models is in progress; send it again later",
                    models=dict(self._model_digests),
                    finished_at=time.time(),
                )
            )
            return None
        thread = threading.Thread(
            target=self._update_models,
            args=(command_id, model_set),
            name="konak-update-models",
            daemon=True,
        )
        thread.start()
        return thread

    def _update_models(self, command_id: str, model_set: str | None) -> None:
        try:
            # A config reload waits: it would rebuild the STT from the old model meanwhile.
            with self._reload_lock:
                update = self.updater.update(command_id, model_set, self.engines)
                if update.engines is not None:
                    self._engines_swapped.clear()
                    self._pending_engines = update.engines
                    while not self._engines_swapped.wait(0.2):
                        if self._stop.is_set():
                            return
                    self._model_digests = self._running_digests()
            self._report_update(update.report)
        finally:
            self._updating.release()

    def _report_update(self, report: ModelsUpdate) -> None:
        self.models_update = report
        self.bus.emit(
            Event(
                "models-updated",
                report.command_id,
                {"outcome": report.outcome, "error": report.error, "models": report.models},
            )
        )
        if self.hub is not None:  # the hub shows the result with the device
            self.hub.publish(self.status())

    def _swap_engines(self) -> None:
        """Put the engines an update loaded in place, if no turn and no speech is running:
        the next wake, endpoint, transcript and reply use them."""
        fresh = self._pending_engines
        if fresh is None or self._active() or self.speaker.busy.is_set():
            return
        self.engines = replace(fresh, intents=self.engines.intents)
        self.detector.engine = fresh.wake
        self.detector.reset()
        self.endpointer.vad = fresh.vad
        self.speaker.tts = fresh.tts
        self._pending_engines = None
        self._engines_swapped.set()
        logger.info("models swapped in between turns")

    def _apply_config_safely(self, config: Config) -> None:
        try:
            self.apply_config(config)
        except KonakError as exc:  # a ConfigError too
            logger.error(
                "config revision %d from the hub refused: %s [%s]",
                config.revision,
                exc.message,
                exc.code,
            )

    def apply_config(self, config: Config) -> None:
        """Apply the hub's sentences, slot lists and wake thresholds."""
        thresholds = {w.model: w.threshold for w in config.wake_words}
        words = tuple(
            replace(
                w,
                threshold=thresholds.get(w.model, thresholds.get(word_name(w.model), w.threshold)),
            )
            for w in self.settings.wake.words
        )
        settings = replace(self.settings, wake=replace(self.settings.wake, words=words))
        self.reload(settings, config.sentences, config.slot_lists)
        logger.info("applied config revision %d from the hub", config.revision)
        self.config_revision = config.revision
        if self.hub is not None:  # the hub shows which revision each device runs
            self.hub.publish(self.status())
        self.bus.emit(Event("config-applied", "config", {"revision": config.revision}))

    def reload(
        self,
        settings: Settings,
        sentences: dict[str, list[str]] | None = None,
        slot_lists: dict[str, list[str]] | None = None,
    ) -> None:
        """Rebuild intents, the STT grammar and wake thresholds from ``settings``.

        Called off the audio thread; the new engines are built first and swapped in with
        one assignment, so a turn in progress finishes with the engines it started with
        and the next turn uses the new ones.
        """
        with self._reload_lock:
            intents = build_intents(settings, sentences, slot_lists)
            stt = build_stt(settings, intents)
            warm_intents(intents)
            warm_stt(stt)
            self.engines = replace(self.engines, intents=intents, stt=stt)
            self.detector.thresholds = self._thresholds(settings)
            self.settings = replace(
                self.settings, wake=settings.wake, intent=settings.intent, stt=settings.stt
            )

    def reload_in_background(
        self, load: Callable[[], Settings], report: Callable[[KonakError | None], None]
    ) -> threading.Thread:
        """Load and apply settings on a thread of its own (SIGHUP); ``report`` says how
        it went (None: applied)."""

        def work() -> None:
            try:
                self.reload(load())
            except KonakError as exc:
                report(exc)
                return
            report(None)

        thread = threading.Thread(target=work, name="konak-reload", daemon=True)
        thread.start()
        return thread

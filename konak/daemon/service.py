"""The daemon: the audio loop walking each turn through its stages, and the hub link.

A turn is: wake (or a continued conversation) -> VAD endpointing -> STT -> intent ->
a local skill or the hub -> reply -> TTS. Each stage emits ``<stage>-start`` and
``<stage>-end`` events; a failure emits one ``error`` event with a stable code; every
turn ends with ``run-end``.
"""

from __future__ import annotations

import collections
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np

from konak import __version__
from konak.daemon.audio import CHUNK_SAMPLES, RATE_HZ, AudioSink, AudioSource, Samples
from konak.daemon.engines import Engines, build_intents, build_stt, word_name
from konak.daemon.events import Event, EventBus, Stage
from konak.daemon.feedback import Speaker
from konak.daemon.hublink import HubLink
from konak.daemon.notify import Notifier
from konak.daemon.outbox import Outbox
from konak.daemon.settings import Settings
from konak.daemon.skills import LocalSkills
from konak.daemon.telemetry import TelemetryReporter
from konak.daemon.vad import Endpoint, Endpointer, command_start
from konak.daemon.wake import Detection, WakeDetector
from konak.protocol import Cmd, Config, Intent, Message, Reply, Status, Wake

logger = logging.getLogger(__name__)

NOT_UNDERSTOOD: Final = "Sorry, I didn't catch that."
HUB_NOT_ANSWERING: Final = "The hub is not answering."
TIMER_DONE: Final = "Your timer is done."
WAKE_TAIL_SECONDS: Final = 0.8  # how long speech after a detection may be the wake word


@dataclass
class _Listening:
    turn_id: str
    audio: list[Samples]
    wake: Detection | None
    continued: bool
    started: float
    wake_at: int  # samples of pre-roll before the command audio


def new_turn_id() -> str:
    """A unique, URL-safe turn id."""
    return "t-" + secrets.token_hex(8)


class Daemon:
    """One device: engines loaded once, an audio source and sink, the hub link."""

    def __init__(
        self,
        settings: Settings,
        engines: Engines,
        source: AudioSource,
        sink: AudioSink,
        *,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.engines = engines
        self.source = source
        self.bus = EventBus()
        self.notifier = notifier or Notifier({})
        self.speaker = Speaker(sink, engines.tts, self.bus, earcons=settings.tts.earcons)
        self.sink = sink
        self.skills = LocalSkills(self._timer_done)
        self.outbox = Outbox(settings.hub.queue_path)
        self.hub = HubLink(settings.device, settings.hub, self.outbox, self._on_hub, self.status)
        self.telemetry = TelemetryReporter(self, settings.hub.telemetry_interval_seconds)
        self.latency_ms: dict[str, float] = {}
        self.state = "starting"
        self.stopped = threading.Event()
        self.source_done = threading.Event()  # the audio source has ended (files, stdin)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: dict[str, threading.Timer] = {}
        self._continue = threading.Event()
        self._last_watchdog = 0.0
        self.detector = self._detector(settings)
        self.endpointer = Endpointer(
            engines.vad,
            threshold=settings.vad.threshold,
            end_silence_seconds=settings.vad.end_silence_seconds,
            max_command_seconds=settings.vad.max_command_seconds,
            no_speech_timeout_seconds=settings.vad.no_speech_timeout_seconds,
        )
        preroll_chunks = max(1, round(settings.wake.preroll_seconds * RATE_HZ / CHUNK_SAMPLES))
        self._preroll: collections.deque[Samples] = collections.deque(maxlen=preroll_chunks)

    def _detector(self, settings: Settings) -> WakeDetector:
        thresholds = {word_name(w.model): w.threshold for w in settings.wake.words}
        if settings.wake.stop_word is not None:
            thresholds[word_name(settings.wake.stop_word)] = 0.5
        return WakeDetector(self.engines.wake, thresholds, settings.wake.refractory_seconds)

    # ------------------------------------------------------------------ lifecycle
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
            versions={"konak": __version__, "onnxruntime": onnxruntime.__version__},
            models=sorted(
                {w.model for w in s.wake.words} | {s.vad.model, s.stt.model, s.tts.model}
            ),
            capabilities=["wake", "stt", "intent", "tts", "timers", "announce"],
        )

    def set_state(self, state: str) -> None:
        """Record and announce the current state (``STATUS=`` for systemd)."""
        self.state = state
        self.notifier.notify(STATUS=state)

    def run(self) -> int:
        """Serve until :meth:`stop`; returns the exit status."""
        self.hub.start()
        self.telemetry.start()
        self.state = "listening"  # before READY: a SIGHUP right after it reports this state
        self.notifier.notify(READY="1", STATUS="listening")
        try:
            self._audio_loop()
            self.source_done.set()
            while not self._stop.is_set():
                self._watchdog(force=True)
                self._stop.wait(self.settings.watchdog_interval_seconds / 2)
        finally:
            self._shutdown()
        return 0

    def stop(self) -> None:
        """Ask :meth:`run` to finish (from a signal handler or another thread)."""
        self._stop.set()
        self.source.close()

    def _shutdown(self) -> None:
        self.notifier.notify(STOPPING="1", STATUS="stopping")
        self.state = "stopping"
        with self._lock:
            for timer in self._pending.values():
                timer.cancel()
            self._pending.clear()
        self.skills.cancel_all()
        self.telemetry.stop()
        self.hub.stop()
        self.speaker.stop()
        self.speaker.close()
        self.sink.close()
        self.outbox.close()
        self.stopped.set()

    def _watchdog(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_watchdog >= self.settings.watchdog_interval_seconds / 2:
            self._last_watchdog = now
            self.notifier.notify(WATCHDOG="1")

    # ------------------------------------------------------------------ audio loop
    def _audio_loop(self) -> None:
        listening: _Listening | None = None
        was_playing = False
        for chunk in self.source.chunks():
            if self._stop.is_set():
                return
            self._watchdog()
            samples = chunk.samples
            if listening is not None:
                listening = self._listen(listening, samples)
                continue
            if self.speaker.busy.is_set() and not self.settings.wake.barge_in:
                was_playing = True
                self._stop_word(samples, chunk.start_seconds)
                continue
            if was_playing:
                # Forget audio heard during playback so the reply cannot wake the device.
                was_playing = False
                self.detector.reset()
                self._preroll.clear()
            if self._continue.is_set():
                self._continue.clear()
                listening = self._begin(new_turn_id(), None, continued=True)
                continue
            self._preroll.append(samples)
            detection = self.detector.process(samples, chunk.start_seconds)
            if detection is None:
                continue
            if detection.word == self._stop_word_name():
                self.speaker.stop()
                continue
            logger.info(
                "wake word %s (%.2f) at %.2fs", detection.word, detection.score, chunk.start_seconds
            )
            if self.settings.wake.barge_in and self.speaker.busy.is_set():
                logger.info("barge-in: interrupting playback for a new turn")
                self.speaker.stop()
            listening = self._begin(new_turn_id(), detection, continued=False)

    def _stop_word_name(self) -> str | None:
        stop = self.settings.wake.stop_word
        return word_name(stop) if stop is not None else None

    def _stop_word(self, samples: Samples, at: float) -> None:
        name = self._stop_word_name()
        if name is None:
            return
        detection = self.detector.process(samples, at)
        if detection is not None and detection.word == name:
            logger.info("stop word heard: interrupting playback")
            self.speaker.stop()

    def _begin(self, turn_id: str, wake: Detection | None, *, continued: bool) -> _Listening:
        self.bus.emit(Event("run-start", turn_id, {"continued": continued}))
        if wake is not None:
            self.bus.emit(
                Event(f"{Stage.WAKE}-end", turn_id, {"word": wake.word, "score": wake.score})
            )
            d = self.settings.device
            self.hub.publish(
                Wake(
                    tenant=d.tenant,
                    device=d.device,
                    turn_id=turn_id,
                    wake_word=wake.word,
                    score=wake.score,
                    area=d.area,
                )
            )
        self.set_state("listening-command")
        audio = list(self._preroll) if wake is not None else []
        self._preroll.clear()
        self.endpointer.reset(skip_tail_seconds=WAKE_TAIL_SECONDS if wake is not None else 0.0)
        self.bus.emit(Event(f"{Stage.VAD}-start", turn_id))
        listening = _Listening(
            turn_id, [], wake, continued, time.monotonic(), sum(a.size for a in audio)
        )
        # The pre-roll goes to STT, not to the endpointer: it holds the wake word.
        listening.audio.extend(audio)
        return listening

    def _listen(self, listening: _Listening, samples: Samples) -> _Listening | None:
        listening.audio.append(samples)
        state = self.endpointer.process(samples)
        if state in (Endpoint.WAITING, Endpoint.SPEAKING):
            return None if self._stop.is_set() else listening
        turn_id = listening.turn_id
        # The wake engine heard nothing while the command was spoken: start it afresh
        # so the features of the last wake word cannot fire again.
        self.detector.reset()
        self.bus.emit(Event(f"{Stage.VAD}-end", turn_id, {"endpoint": state.value}))
        if state is Endpoint.NO_SPEECH:
            self._fail(turn_id, "no_speech", None)
        else:
            self.speaker.earcon("ack", turn_id)
            audio = np.concatenate(listening.audio)
            if listening.wake is not None:
                start = command_start(
                    self.engines.vad, audio, listening.wake_at, self.settings.vad.threshold
                )
                audio = audio[start:]
                logger.debug("command audio starts %d samples after the pre-roll", start)
            self._turn(listening, audio, time.time())
        self.set_state("listening")
        return None

    # ------------------------------------------------------------------ the turn
    def _timed(self, stage: Stage, turn_id: str, work: Callable[[], Any]) -> Any:
        self.bus.emit(Event(f"{stage}-start", turn_id))
        start = time.perf_counter()
        result = work()
        self.latency_ms[stage.value] = (time.perf_counter() - start) * 1000
        return result

    def _turn(self, listening: _Listening, audio: Samples, speech_ended_at: float) -> None:
        turn_id = listening.turn_id
        self.set_state("transcribing")
        transcript = self._timed(Stage.STT, turn_id, lambda: self.engines.stt.transcribe(audio))
        self.bus.emit(
            Event(
                f"{Stage.STT}-end",
                turn_id,
                {"text": transcript.text, "rejected": transcript.rejected},
            )
        )
        if not transcript.text:
            self._fail(turn_id, "not_understood", NOT_UNDERSTOOD)
            return
        recognized = self._timed(
            Stage.INTENT, turn_id, lambda: self.engines.intents.recognize(transcript.text)
        )
        name = recognized.name if recognized else None
        slots = dict(recognized.slots) if recognized else {}
        self.bus.emit(Event(f"{Stage.INTENT}-end", turn_id, {"intent": name, "slots": slots}))
        if name is not None and self.skills.handles(name):
            answer = self.skills.answer(name, slots)
            self.speaker.say(answer, turn_id, on_done=lambda: self._end(turn_id))
            return
        d = self.settings.device
        wake = listening.wake
        message = Intent(
            tenant=d.tenant,
            device=d.device,
            turn_id=turn_id,
            text=transcript.text,
            intent=name,
            slots=slots,
            language=d.language,
            area=d.area,
            wake_word=wake.word if wake else None,
            wake_score=wake.score if wake else None,
            speech_ended_at=speech_ended_at,
            continued=listening.continued,
        )
        self.bus.emit(Event(f"{Stage.HUB}-start", turn_id, {"queued": len(self.outbox) + 1}))
        timer = threading.Timer(
            self.settings.hub.reply_timeout_seconds, self._reply_timeout, [turn_id]
        )
        timer.daemon = True
        with self._lock:
            self._pending[turn_id] = timer
        self.outbox.put(turn_id, message.topic, message.to_payload())
        timer.start()

    def _fail(self, turn_id: str, code: str, spoken: str | None) -> None:
        self.bus.emit(Event("error", turn_id, {"code": code}))
        self.speaker.earcon("error", turn_id)
        if spoken is not None:
            self.speaker.say(spoken, turn_id, on_done=lambda: self._end(turn_id))
        else:
            self._end(turn_id)

    def _end(self, turn_id: str) -> None:
        self.bus.emit(Event("run-end", turn_id))

    def _reply_timeout(self, turn_id: str) -> None:
        with self._lock:
            if self._pending.pop(turn_id, None) is None:
                return
        logger.warning(
            "no reply to turn %s within %.1fs", turn_id, self.settings.hub.reply_timeout_seconds
        )
        self._fail(turn_id, "hub_timeout", HUB_NOT_ANSWERING)

    def _timer_done(self) -> None:
        self.speaker.earcon("timer", "timer")
        self.speaker.say(TIMER_DONE, "timer")

    # ------------------------------------------------------------------ from the hub
    def _on_hub(self, message: Message) -> None:
        if isinstance(message, Reply):
            self._on_reply(message)
        elif isinstance(message, Cmd):
            self._on_cmd(message)
        elif isinstance(message, Config):
            threading.Thread(target=self.apply_config, args=(message,), daemon=True).start()

    def _on_reply(self, reply: Reply) -> None:
        with self._lock:
            timer = self._pending.pop(reply.turn_id, None)
        if timer is None:
            logger.info("dropping a reply to unknown or finished turn %s", reply.turn_id)
            return
        timer.cancel()
        turn_id = reply.turn_id
        self.latency_ms[Stage.HUB.value] = 0.0
        self.bus.emit(Event(f"{Stage.HUB}-end", turn_id, {"outcome": reply.outcome}))
        if reply.speak:
            self.speaker.say(reply.text, turn_id, on_done=lambda: self._end(turn_id))
        else:
            self._end(turn_id)
        if reply.continue_conversation:
            # Set after say(): the speaker is busy by now, so listening starts after it.
            self._continue.set()

    def _on_cmd(self, cmd: Cmd) -> None:
        if cmd.action == "announce" and cmd.text:
            self.speaker.say(cmd.text, cmd.command_id)
        elif cmd.action == "stop":
            self.speaker.stop()
        else:
            logger.info("command %s is handled by `konak models`, not the daemon", cmd.action)

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
        self.bus.emit(Event("config-applied", "config", {"revision": config.revision}))

    def reload(
        self,
        settings: Settings,
        sentences: dict[str, list[str]] | None = None,
        slot_lists: dict[str, list[str]] | None = None,
    ) -> None:
        """Rebuild intents, the STT grammar and wake thresholds from ``settings``."""
        intents = build_intents(settings, sentences, slot_lists)
        stt = build_stt(settings, intents)
        self.engines.intents, self.engines.stt = intents, stt
        self.detector.thresholds = self._detector(settings).thresholds
        self.settings = replace(
            self.settings, wake=settings.wake, intent=settings.intent, stt=settings.stt
        )

"""``konak daemon``: run the device daemon, transcribe a WAV stage by stage, say a text."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Final

import numpy as np

from konak.daemon.errors import ConfigError, DaemonError

logger = logging.getLogger(__name__)

DEFAULT_CONFIG: Final = Path("/etc/konak/daemon.toml")
DEFAULT_CREDENTIALS: Final = Path("/var/lib/konak/daemon/credentials.json")


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``run``, ``transcribe`` and ``say`` subcommands."""
    sub = parser.add_subparsers(dest="daemon_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run the daemon (systemd Type=notify)")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="daemon.toml")
    run.set_defaults(handler=_run)
    tr = sub.add_parser("transcribe", help="print what each stage finds in a WAV file")
    tr.add_argument("file", type=Path, help="a 16-bit PCM WAV file")
    tr.add_argument("--config", type=Path, help="daemon.toml (default: built-in defaults)")
    tr.add_argument("--no-wake", action="store_true", help="skip the wake word stage")
    tr.set_defaults(handler=_transcribe)
    say = sub.add_parser("say", help="speak a text with the device's voice")
    say.add_argument("text")
    say.add_argument("-o", "--output", type=Path, help="write a WAV file instead of playing")
    say.add_argument("--config", type=Path, help="daemon.toml (default: built-in defaults)")
    say.set_defaults(handler=_say)
    enroll = sub.add_parser("enroll", help="register this device at the hub with a claim token")
    enroll.add_argument("--hub", required=True, help="the hub's URL, e.g. https://hub.example:8380")
    enroll.add_argument("--token", required=True, help="the one-time claim token from the hub")
    enroll.add_argument("--name", required=True, help="this device's name, e.g. 'Kitchen Pi'")
    enroll.add_argument("--area", help="the area the device is in, e.g. kitchen")
    enroll.add_argument(
        "--credentials",
        type=Path,
        default=DEFAULT_CREDENTIALS,
        help=f"where to store the broker login (mode 0600; default {DEFAULT_CREDENTIALS})",
    )
    enroll.set_defaults(handler=_enroll)


def _enroll(args: argparse.Namespace) -> int:
    from konak.provisioning.enroll import enroll

    got = enroll(args.hub, args.token, args.name, args.area, args.credentials)
    print(
        f"enrolled as {got.tenant}/{got.device}; broker {got.host}:{got.port}; "
        f"login stored in {args.credentials}. In daemon.toml set [device] tenant = "
        f'"{got.tenant}", device = "{got.device}" and [hub] credentials_file = '
        f'"{args.credentials}".'
    )
    return 0


def _models_dir() -> Path:
    from konak.edge_models.settings import ENV_MODELS_DIR, default_models_dir

    env = os.environ.get(ENV_MODELS_DIR)
    return Path(env) if env else default_models_dir(os.geteuid(), Path.home())


def _settings(path: Path | None, *, offline: bool = False) -> object:
    from konak.daemon import settings as s

    if path is not None:
        return s.load(path, default_models_dir=_models_dir())
    raw = {"device": {"tenant": "local", "device": "local"}}
    if offline:
        raw["audio"] = {"source": "none", "sink": "none"}
    return s.parse(raw, base_dir=Path.cwd(), default_models_dir=_models_dir())


def _run(args: argparse.Namespace) -> int:
    from konak.daemon.audio import open_sink, open_source
    from konak.daemon.engines import load_engines
    from konak.daemon.notify import Notifier, setup_logging
    from konak.daemon.service import Daemon
    from konak.daemon.settings import Settings, load

    setup_logging(args.log_level)
    settings = load(args.config, default_models_dir=_models_dir())
    notifier = Notifier()
    notifier.notify(STATUS="loading models")
    engines = load_engines(settings)
    source, sink = open_source(settings.audio), open_sink(settings.audio)
    daemon = Daemon(settings, engines, source, sink, notifier=notifier)

    def on_term(signum: int, frame: FrameType | None) -> None:
        daemon.stop()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        notifier.notify(RELOADING="1", STATUS="reloading config")
        try:
            fresh: Settings = load(args.config, default_models_dir=_models_dir())
            daemon.reload(fresh)
        except DaemonError as exc:
            print(f"konak daemon: reload refused: {exc.message} [{exc.code}]", file=sys.stderr)
            notifier.notify(READY="1", STATUS=f"reload refused; {daemon.state}")
            return
        logger.info("config reloaded from %s", args.config)
        notifier.notify(READY="1", STATUS=f"config reloaded; {daemon.state}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    return daemon.run()


def _transcribe(args: argparse.Namespace) -> int:
    from konak.daemon.audio import CHUNK_SAMPLES, FileSource
    from konak.daemon.engines import load_engines, word_name
    from konak.daemon.settings import Settings
    from konak.daemon.vad import Endpoint, Endpointer, command_start
    from konak.daemon.wake import WakeDetector

    settings = _settings(args.config, offline=True)
    assert isinstance(settings, Settings)
    engines = load_engines(settings)
    for name, seconds in engines.load_seconds.items():
        print(f"load    {name:<7} {seconds * 1000:8.1f} ms")
    samples = FileSource(args.file).samples
    chunks = [samples[i : i + CHUNK_SAMPLES] for i in range(0, samples.size, CHUNK_SAMPLES)]
    chunks = [np.pad(c, (0, CHUNK_SAMPLES - c.size)) for c in chunks]
    start_index = 0
    if not args.no_wake:
        detector = WakeDetector(
            engines.wake,
            {word_name(w.model): w.threshold for w in settings.wake.words},
            settings.wake.refractory_seconds,
        )
        t0 = time.perf_counter()
        found = None
        for index, chunk in enumerate(chunks):
            found = detector.process(chunk, index * CHUNK_SAMPLES / 16_000)
            if found is not None:
                start_index = index + 1
                break
        ms = (time.perf_counter() - t0) * 1000
        if found is None:
            print(f"wake    none              {ms:8.1f} ms")
            return 1
        at = start_index * CHUNK_SAMPLES / 16_000
        print(f"wake    {found.word} {found.score:.2f} at {at:.2f}s {ms:8.1f} ms")
    endpointer = Endpointer(
        engines.vad,
        threshold=settings.vad.threshold,
        end_silence_seconds=settings.vad.end_silence_seconds,
        max_command_seconds=settings.vad.max_command_seconds,
        no_speech_timeout_seconds=settings.vad.no_speech_timeout_seconds,
    )
    endpointer.reset(skip_tail_seconds=0.8 if start_index else 0.0)
    t0 = time.perf_counter()
    state, end_index = Endpoint.WAITING, len(chunks)
    for index in range(start_index, len(chunks)):
        state = endpointer.process(chunks[index])
        if state not in (Endpoint.WAITING, Endpoint.SPEAKING):
            end_index = index + 1
            break
    ms = (time.perf_counter() - t0) * 1000
    # As the daemon does: the pre-roll ahead of the command, minus the wake word's tail.
    preroll = round(settings.wake.preroll_seconds * 16_000 / CHUNK_SAMPLES) if start_index else 0
    first = max(0, start_index - preroll)
    command = np.concatenate(chunks[first:end_index] or [np.zeros(0, np.int16)])
    if start_index:
        wake_at = (start_index - first) * CHUNK_SAMPLES
        command = command[command_start(engines.vad, command, wake_at, settings.vad.threshold) :]
    print(f"vad     {state.value} {command.size / 16_000:.2f}s {ms:8.1f} ms")
    t0 = time.perf_counter()
    transcript = engines.stt.transcribe(command)
    ms = (time.perf_counter() - t0) * 1000
    shown = transcript.text or f"(rejected: {transcript.candidate!r})"
    print(f"stt     {shown} {ms:8.1f} ms")
    t0 = time.perf_counter()
    recognized = engines.intents.recognize(transcript.text) if transcript.text else None
    ms = (time.perf_counter() - t0) * 1000
    if recognized is None:
        print(f"intent  none {ms:8.1f} ms")
    else:
        print(f"intent  {recognized.name} {recognized.slots} {ms:8.1f} ms")
    return 0


def _say(args: argparse.Namespace) -> int:
    from konak.daemon.audio import PyAudioSink, write_wav
    from konak.daemon.engines import model_path
    from konak.daemon.settings import Settings
    from konak.daemon.tts import PiperTts

    settings = _settings(args.config, offline=True)
    assert isinstance(settings, Settings)
    tts = PiperTts(
        model_path(settings.models_dir, settings.tts.model, "tts.model"),
        threads=settings.tts.threads,
        memory_arena=settings.tts.memory_arena,
    )
    samples, rate = tts.synthesize(args.text)
    if args.output is not None:
        try:
            write_wav(args.output, samples, rate)
        except OSError as exc:
            raise ConfigError(f"cannot write {args.output}: {exc}") from exc
        print(f"wrote {args.output} ({samples.size / rate:.2f}s)")
        return 0
    sink = PyAudioSink(settings.audio.output_device)
    sink.play(samples, rate)
    sink.close()
    return 0

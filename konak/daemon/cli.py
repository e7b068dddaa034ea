"""``konak daemon``: run the device daemon, transcribe a WAV stage by stage, say a text."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Final

from konak.daemon.errors import DaemonError
from konak.errors import ConfigError, KonakError

if TYPE_CHECKING:
    from konak.daemon.events import Event

logger = logging.getLogger(__name__)

DEFAULT_CONFIG: Final = Path("/etc/konak/daemon.toml")
DEFAULT_CREDENTIALS: Final = Path("/var/lib/konak/daemon/credentials.json")
TRANSCRIBE_TIMEOUT_SECONDS: Final = 300.0
JOIN_SECONDS: Final = 10.0


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``run``, ``check-config``, ``transcribe``, ``say`` and ``enroll`` subcommands."""
    sub = parser.add_subparsers(dest="daemon_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run the daemon (systemd Type=notify)")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="daemon.toml")
    run.set_defaults(handler=_run)
    check = sub.add_parser(
        "check-config", help="validate daemon.toml and that its models are installed, and exit"
    )
    check.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="daemon.toml")
    check.set_defaults(handler=_check)
    tr = sub.add_parser(
        "transcribe", help="run the daemon's turn over a WAV file and print each stage's result"
    )
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
        "--device",
        help="this device's id (default: derived from --name); a claim token minted for "
        "one device id needs it",
    )
    enroll.add_argument(
        "--credentials",
        type=Path,
        default=DEFAULT_CREDENTIALS,
        help=f"where to store the broker login (mode 0600; default {DEFAULT_CREDENTIALS})",
    )
    enroll.set_defaults(handler=_enroll)


def _enroll(args: argparse.Namespace) -> int:
    from konak.provisioning.enroll import enroll

    got = enroll(args.hub, args.token, args.name, args.area, args.credentials, device=args.device)
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


def _check(args: argparse.Namespace) -> int:
    """What ``run`` would refuse, without opening audio or the broker: the settings, every
    model they name installed, the sentences parsed (systemd's ExecStartPre, Ansible)."""
    from konak.daemon.engines import build_intents, model_path, required_models
    from konak.daemon.settings import load

    settings = load(args.config, default_models_dir=_models_dir())
    for key, model_id in required_models(settings).items():
        model_path(settings.models_dir, model_id, key)
    build_intents(settings)
    device = settings.device
    print(
        f"{args.config}: ok (device {device.tenant}/{device.device}, "
        f"{len(settings.wake.words)} wake word(s), stt {settings.stt.engine}, "
        f"hub {settings.hub.host}:{settings.hub.port}, models in {settings.models_dir})"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from konak.daemon.audio import open_sink, open_source
    from konak.daemon.engines import load_engines
    from konak.daemon.notify import Notifier, setup_logging
    from konak.daemon.service import Daemon
    from konak.daemon.settings import load

    setup_logging(args.log_level)
    settings = load(args.config, default_models_dir=_models_dir())
    notifier = Notifier()
    notifier.notify(STATUS="loading models")
    engines = load_engines(settings)
    source, sink = open_source(settings.audio), open_sink(settings.audio)
    daemon = Daemon(settings, engines, source, sink, notifier=notifier)

    def on_term(signum: int, frame: FrameType | None) -> None:
        daemon.stop()

    def reported(error: KonakError | None) -> None:
        if error is not None:
            print(f"konak daemon: reload refused: {error.message} [{error.code}]", file=sys.stderr)
            notifier.notify(READY="1", STATUS=f"reload refused; {daemon.state}")
            return
        logger.info("config reloaded from %s", args.config)
        notifier.notify(READY="1", STATUS=f"config reloaded; {daemon.state}")

    def on_hup(signum: int, frame: FrameType | None) -> None:
        # The handler runs on the audio thread: the new engines are built elsewhere.
        notifier.notify(RELOADING="1", STATUS="reloading config")
        daemon.reload_in_background(
            lambda: load(args.config, default_models_dir=_models_dir()), reported
        )

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    return daemon.run()


def _transcribe(args: argparse.Namespace) -> int:
    """Run the daemon's own turn over a file (no broker, no speaker) and print its events."""
    from konak.daemon.audio import FileSource, NullSink
    from konak.daemon.engines import load_engines
    from konak.daemon.service import Daemon
    from konak.daemon.settings import Settings

    settings = _settings(args.config, offline=True)
    assert isinstance(settings, Settings)
    source = FileSource(args.file)  # a bad file is reported before the models load
    engines = load_engines(settings)
    for name, seconds in engines.load_seconds.items():
        print(f"load    {name:<7} {seconds * 1000:8.1f} ms")
    daemon = Daemon(settings, engines, source, NullSink(), offline=True)
    if args.no_wake:
        daemon.continue_without_wake()
    heard: list[Event] = []

    def show(event: Event) -> None:
        heard.append(event)
        line = describe(event)
        if line is not None:
            print(line, flush=True)

    daemon.bus.subscribe(show)
    done = threading.Thread(target=daemon.run, name="konak-transcribe", daemon=True)
    done.start()
    if not daemon.source_done.wait(TRANSCRIBE_TIMEOUT_SECONDS):
        raise DaemonError(f"{args.file}: not done within {TRANSCRIBE_TIMEOUT_SECONDS:.0f}s")
    daemon.wait_idle(TRANSCRIBE_TIMEOUT_SECONDS)
    daemon.stop()
    done.join(JOIN_SECONDS)
    if not any(e.type == "run-start" for e in heard):
        print("wake    none")
        return 1
    return 0


def describe(event: Event) -> str | None:
    """One line per stage end (and errors) for ``konak daemon transcribe``."""
    data = event.data
    ms = f"{data.get('duration_ms', 0.0):8.1f} ms"
    if event.type == "wake-end":
        return f"wake    {data['word']} {data['score']:.2f} {ms}"
    if event.type == "vad-end":
        return f"vad     {data['endpoint']} {data['command_seconds']:.2f}s {ms}"
    if event.type == "stt-end":
        return f"stt     {data.get('text') or '(rejected)'} {ms}"
    if event.type == "intent-end":
        return f"intent  {data['intent'] or 'none'} {data['slots'] if data['intent'] else ''} {ms}"
    if event.type == "hub-end":
        return f"hub     {data.get('outcome')} {ms}"
    if event.type == "tts-end":
        return f"tts     {data['text']!r} {ms}"
    if event.type == "error":
        return f"error   {data['code']} {data.get('message', '')}".rstrip()
    return None


def _say(args: argparse.Namespace) -> int:
    from konak.daemon.audio import PyAudioSink, write_wav
    from konak.daemon.engines import model_path
    from konak.daemon.settings import Settings
    from konak.daemon.tts import PiperTts

    settings = _settings(args.config, offline=True)
    assert isinstance(settings, Settings)
    if args.output is not None and not args.output.parent.is_dir():
        # Said before the voice loads and speaks, not after.
        raise ConfigError(f"cannot write {args.output}: no directory {args.output.parent}")
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
            raise ConfigError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
        print(f"wrote {args.output} ({samples.size / rate:.2f}s)")
        return 0
    sink = PyAudioSink(settings.audio.output_device)
    sink.play(samples, rate)
    sink.close()
    return 0

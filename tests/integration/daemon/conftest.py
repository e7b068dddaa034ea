"""Fixtures for the daemon's integration tests: real models, real speech, a real broker.

A test speaks a command (:func:`command`, the ``wav`` or ``speech`` fixture), has a probe
stand in for the hub (``listen``), and starts the daemon on the test's broker: in this
process (``run_daemon``) or as ``konak daemon run`` (``daemon_toml`` and ``spawn_daemon``,
which hears what systemd would).
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import pytest

from konak.daemon.audio import RATE_HZ, Samples, write_wav
from konak.daemon.engines import Engines, load_engines
from konak.daemon.settings import parse
from konak.daemon.tts import PiperTts, spoken
from konak.devtools.mosquitto import Credentials
from konak.devtools.probe import MqttProbe
from konak.protocol import Kind, subscription
from tests.conftest import KONAK, ProbeFactory
from tests.daemon.fakes import Events

VOICE = "piper-en-us-joe-medium"
SLOT_LISTS = {"name": ["kitchen light", "bedroom lamp"], "area": ["kitchen", "bedroom"]}


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The installed models (``make models``); the tests need the real ones."""
    from konak.edge_models.settings import ENV_MODELS_DIR

    path = Path(os.environ.get(ENV_MODELS_DIR, Path(__file__).parents[3] / ".models"))
    if not (path / "models" / VOICE).exists():
        pytest.fail(f"models are not installed in {path}: run `make models`")
    return path


@pytest.fixture(scope="session")
def voice(models_dir: Path) -> PiperTts:
    """The project's piper voice, to synthesise test speech."""
    from konak.daemon.engines import model_path

    return PiperTts(model_path(models_dir, VOICE, "tts.model"), threads=2)


Speech = Callable[..., Samples]


def command(*texts: str, lead: float = 1.0, tail: float = 1.5) -> tuple[str | float, ...]:
    """Speech parts of each command said after the wake word: ``lead`` seconds of silence
    first, ``tail`` seconds after each command."""
    parts: list[str | float] = [lead]
    for text in texts:
        parts += ["Hey Jarvis,", 0.3, text, tail]
    return tuple(parts)


@pytest.fixture(scope="session")
def speech(voice: PiperTts, tmp_path_factory: pytest.TempPathFactory) -> Speech:
    """16 kHz speech for a sequence of (text or seconds of silence), cached per session;
    synthesised without piper's random variation, so every run hears the same audio."""
    cache: dict[str, Samples] = {}

    def build(*parts: str | float) -> Samples:
        key = hashlib.sha256(repr(parts).encode()).hexdigest()
        if key not in cache:
            cache[key] = spoken(voice, *parts)
        return cache[key]

    return build


Wav = Callable[..., Path]


@pytest.fixture
def wav(tmp_path: Path, speech: Speech) -> Wav:
    """Write speech parts to a WAV file in the test's directory."""
    counter = iter(range(1000))

    def write(*parts: str | float) -> Path:
        path = tmp_path / f"input-{next(counter)}.wav"
        write_wav(path, speech(*parts), RATE_HZ)
        return path

    return write


class Broker(Protocol):
    """Where a daemon logs in: the ``broker`` fixture, or another test broker."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def admin(self) -> Credentials: ...


def daemon_config(
    broker: Broker, tmp_path: Path, models_dir: Path, **sections: Any
) -> dict[str, Any]:
    """A daemon config (as a TOML-like dict) for the test broker and tmp files; each of
    ``sections`` updates a table key by key (or sets a top-level value)."""
    raw: dict[str, Any] = {
        "device": {"tenant": "acme", "device": "kitchen-pi", "area": "kitchen"},
        "models": {"dir": str(models_dir)},
        "audio": {"source": "none", "sink": "wav", "sink_path": str(tmp_path / "out.wav")},
        "intent": {"slot_lists": SLOT_LISTS},
        "hub": {
            "host": broker.host,
            "port": broker.port,
            "username": broker.admin.username,
            "password": broker.admin.password,
            "queue_path": str(tmp_path / "queue.sqlite3"),
            "reply_timeout_seconds": 30.0,
            "reconnect_seconds": 0.5,
        },
        "tts": {"threads": 2},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values} if isinstance(values, dict) else values
    return raw


DeviceConfig = Callable[..., dict[str, Any]]


@pytest.fixture
def device_config(request: pytest.FixtureRequest, tmp_path: Path, models_dir: Path) -> DeviceConfig:
    """:func:`daemon_config` of this test: on the ``broker`` fixture (started when first
    needed) unless given ``broker=``, with the test's files and the installed models."""

    def build(broker: Broker | None = None, **sections: Any) -> dict[str, Any]:
        broker = broker or request.getfixturevalue("broker")
        return daemon_config(broker, tmp_path, models_dir, **sections)

    return build


Listen = Callable[..., MqttProbe]


@pytest.fixture
def listen(mqtt_probe: ProbeFactory) -> Listen:
    """A probe standing in for the hub, subscribed to each message kind (of every device)
    or topic filter given; to every kind when none is."""

    def connect(*topics: Kind | str) -> MqttProbe:
        probe = mqtt_probe()
        for topic in topics or (subscription(),):
            probe.subscribe(subscription(topic) if isinstance(topic, Kind) else topic)
        return probe

    return connect


@pytest.fixture(scope="session")
def shared_engines(models_dir: Path) -> Engines:
    """Engines loaded once per session (loading takes seconds)."""
    raw = {
        "device": {"tenant": "acme", "device": "kitchen-pi"},
        "intent": {"slot_lists": SLOT_LISTS},
    }
    settings = parse(raw, base_dir=Path.cwd(), default_models_dir=models_dir)
    return load_engines(settings)


class EventLog(Events):
    """Records a daemon's events and lets a test wait for one (a minute at most)."""

    default_timeout = 60.0


RunningDaemon = Callable[..., tuple[Any, EventLog]]


@pytest.fixture
def run_daemon(
    shared_engines: Engines, device_config: DeviceConfig, tmp_path: Path, models_dir: Path
) -> Iterator[RunningDaemon]:
    """Start in-process daemons (each in a thread) configured by :func:`daemon_config` with
    ``sections`` (and ``broker``); they hear a WAV file or a source object given as
    ``source`` (the config's source otherwise). Stopped after the test."""
    from konak.daemon.audio import open_sink, open_source
    from konak.daemon.service import Daemon

    started: list[tuple[Daemon, threading.Thread]] = []

    def start(
        *, source: Any = None, sink: Any = None, wake_engine: Any = None, **sections: Any
    ) -> tuple[Daemon, EventLog]:
        if isinstance(source, Path):
            heard = {"source": "file", "source_path": str(source)}
            sections["audio"], source = {**sections.get("audio", {}), **heard}, None
        raw = device_config(**sections)
        settings = parse(raw, base_dir=tmp_path, default_models_dir=models_dir)
        engines = replace(shared_engines, wake=wake_engine or shared_engines.wake)
        engines.wake.reset()
        source = source if source is not None else open_source(settings.audio)
        sink = sink if sink is not None else open_sink(settings.audio)
        daemon = Daemon(settings, engines, source, sink)
        log = EventLog()
        daemon.bus.subscribe(log)
        thread = threading.Thread(target=daemon.run, daemon=True)
        thread.start()
        started.append((daemon, thread))
        return daemon, log

    yield start
    for daemon, thread in started:
        daemon.stop()
        thread.join(timeout=10)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def to_toml(raw: dict[str, Any]) -> str:
    """A small TOML writer for config dicts (top-level scalars, then tables)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in raw.items() if not isinstance(v, dict)]
    for name, table in raw.items():
        if isinstance(table, dict):
            lines.append(f"[{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


DaemonToml = Callable[..., Path]


@pytest.fixture
def daemon_toml(device_config: DeviceConfig, tmp_path: Path) -> DaemonToml:
    """Write :func:`daemon_config` with ``sections`` to the test's daemon.toml (again at each
    call, as an operator edits it); its path."""

    def write(**sections: Any) -> Path:
        config = tmp_path / "daemon.toml"
        config.write_text(to_toml(device_config(**sections)))
        return config

    return write


class Notifications:
    """The daemon's sd_notify datagrams, read from a test socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lines: list[str] = []

    def wait(self, line: str) -> None:
        """Read until ``line`` was sent (a minute at most)."""
        while line not in self.lines:
            try:
                self.lines += self.sock.recv(4096).decode().splitlines()
            except TimeoutError:
                raise AssertionError(f"no {line!r} from the daemon: {self.lines}") from None


class DaemonProcess:
    """A running ``konak daemon run``; its output once :meth:`finish` ends it."""

    def __init__(self, proc: subprocess.Popen[bytes], notes: Notifications) -> None:
        self.proc, self.notes = proc, notes
        self.output: str | None = None

    def finish(self) -> str:
        """Kill the process unless it has ended; what it printed (stdout and stderr)."""
        if self.output is None:
            self.proc.kill()
            assert self.proc.stdout is not None
            self.output = self.proc.stdout.read().decode()
            self.proc.stdout.close()
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        return self.output


SpawnDaemon = Callable[..., DaemonProcess]


@pytest.fixture
def spawn_daemon(tmp_path: Path) -> Iterator[SpawnDaemon]:
    """Start ``konak daemon run --config CONFIG`` processes (``stdin``: a pipe to write audio
    into; ``env``: added to the environment) whose sd_notify datagrams reach a test socket;
    each is killed after the test unless it has ended."""
    address = str(tmp_path / "notify.sock")
    started: list[DaemonProcess] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(60)

        def spawn(
            config: Path, *, stdin: bool = False, env: dict[str, str] | None = None
        ) -> DaemonProcess:
            proc = subprocess.Popen(
                [*KONAK, "daemon", "run", "--config", str(config)],
                env={**os.environ, **(env or {}), "NOTIFY_SOCKET": address},
                stdin=subprocess.PIPE if stdin else None,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            started.append(DaemonProcess(proc, Notifications(sock)))
            return started[-1]

        yield spawn
        for daemon in started:
            daemon.finish()


class GatedSink:
    """A speaker whose playback lasts until the test lets it end (or it is closed).

    Each ``play`` blocks until :meth:`release`, like a long sentence still sounding;
    what is played is kept in ``played`` (sample counts).
    """

    def __init__(self) -> None:
        self.released = threading.Event()
        self.playing = threading.Event()
        self.played: list[int] = []

    def play(self, samples: Samples, rate_hz: int) -> None:
        self.playing.set()
        self.released.wait(timeout=60)
        self.played.append(samples.size)

    def release(self) -> None:
        """Let every blocked and future ``play`` finish at once."""
        self.released.set()

    def close(self) -> None:
        self.released.set()

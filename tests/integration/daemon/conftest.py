"""Fixtures for the daemon's integration tests: real models, real speech, a real broker."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from konak.daemon.audio import RATE_HZ, Samples, write_wav
from konak.daemon.engines import Engines, load_engines
from konak.daemon.settings import Settings, parse
from konak.daemon.tts import PiperTts, spoken
from konak.devtools.mosquitto import Mosquitto
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


@pytest.fixture
def wav(tmp_path: Path, speech: Speech) -> Callable[..., Path]:
    """Write speech parts to a WAV file in the test's directory."""
    counter = iter(range(1000))

    def write(*parts: str | float) -> Path:
        path = tmp_path / f"input-{next(counter)}.wav"
        write_wav(path, speech(*parts), RATE_HZ)
        return path

    return write


def daemon_config(
    broker: Mosquitto, tmp_path: Path, models_dir: Path, **sections: dict[str, Any]
) -> dict[str, Any]:
    """A daemon config (as a TOML-like dict) for the test broker and tmp files."""
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
        raw[name] = {**raw.get(name, {}), **values}
    return raw


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
def run_daemon(shared_engines: Engines) -> Iterator[RunningDaemon]:
    """Start in-process daemons (in a thread) from a settings dict; stopped after the test."""
    from konak.daemon.audio import open_sink, open_source
    from konak.daemon.service import Daemon

    started: list[tuple[Daemon, threading.Thread]] = []

    def start(
        settings: Settings, source: Any = None, sink: Any = None, wake: Any = None
    ) -> tuple[Daemon, EventLog]:
        engines = replace(shared_engines) if wake is None else replace(shared_engines, wake=wake)
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

"""The daemon's settings: one TOML file, validated once at start into frozen dataclasses.

Every problem (unknown key, wrong type, bad value, unreadable file) becomes one
:class:`ConfigError` whose message names the key (``section.key``) or the file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TypeVar, cast

from konak.daemon.errors import ConfigError
from konak.protocol.topics import is_identifier

T = TypeVar("T")

SOURCES: Final = ("pyaudio", "file", "stdin", "none")
SINKS: Final = ("pyaudio", "wav", "none")
STT_ENGINES: Final = ("pocketsphinx", "vosk")
STT_MODES: Final = ("grammar", "open")
# stt.min_score, nats per frame (grammar path against phone loop; docs/daemon.md)
DEFAULT_MIN_SCORE: Final = -4.3
# The audio before a detection fed to the decoder: the whole wake word, so the grammar's
# wake-word prefix can align with it and the command is found after it (docs/daemon.md).
DEFAULT_PREROLL_SECONDS: Final = 1.5
MIN_PREROLL_SECONDS: Final = 1.0
MAX_PREROLL_SECONDS: Final = 3.0
MIN_SCORE_RANGE: Final = (-20.0, 20.0)
# The intents whose sentences the device recognises by default: lights and the local skills.
DEFAULT_INTENTS: Final = (
    "HassTurnOn",
    "HassTurnOff",
    "HassGetCurrentTime",
    "HassGetCurrentDate",
    "HassStartTimer",
    "HassCancelTimer",
    "HassTimerStatus",
)


DEFAULT_INTENT_EXPIRY_SECONDS: Final = 30.0


@dataclass(frozen=True)
class WakeWord:
    """One wake word model and its threshold."""

    model: str
    threshold: float = 0.5


@dataclass(frozen=True)
class DeviceSettings:
    """Who the device is."""

    tenant: str
    device: str
    name: str | None = None
    area: str | None = None
    language: str = "en"


@dataclass(frozen=True)
class AudioSettings:
    """Where audio comes from and goes to."""

    source: str = "pyaudio"
    source_path: Path | None = None
    source_rate_hz: int = 16_000
    realtime: bool = False
    input_device: str | None = None
    sink: str = "pyaudio"
    sink_path: Path | None = None
    output_device: str | None = None


@dataclass(frozen=True)
class WakeSettings:
    """Wake word detection."""

    words: tuple[WakeWord, ...] = (WakeWord("oww-hey-jarvis"),)
    refractory_seconds: float = 2.0
    preroll_seconds: float = DEFAULT_PREROLL_SECONDS
    barge_in: bool = False
    stop_word: str | None = None


@dataclass(frozen=True)
class VadSettings:
    """Endpointing with silero."""

    model: str = "silero-vad-v6"
    threshold: float = 0.5
    # Long enough to survive a comma pause (MODELS.md note 4).
    end_silence_seconds: float = 0.7
    max_command_seconds: float = 10.0
    no_speech_timeout_seconds: float = 4.0


@dataclass(frozen=True)
class SttSettings:
    """Speech to text."""

    engine: str = "pocketsphinx"
    mode: str = "grammar"
    model: str = "pocketsphinx-en-us"
    # Grammar mode: below this score (nats per frame: the grammar path against a phone
    # loop over the command, see stt.py) the speech is rejected. Higher rejects more.
    min_score: float = DEFAULT_MIN_SCORE

    def __post_init__(self) -> None:
        if not MIN_SCORE_RANGE[0] <= self.min_score <= MIN_SCORE_RANGE[1]:
            low, high = MIN_SCORE_RANGE
            raise ConfigError(
                f"stt.min_score must be between {low} and {high}, not {self.min_score}"
            )


@dataclass(frozen=True)
class IntentSettings:
    """Which intents and sentences the device understands."""

    intents: tuple[str, ...] = DEFAULT_INTENTS
    slot_lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sentences: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class HubSettings:
    """The MQTT link to the hub."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: Path | None = None
    keepalive_seconds: int = 30
    session_expiry_seconds: int = 86_400
    reconnect_seconds: float = 2.0
    reply_timeout_seconds: float = 8.0
    # A sent intent the hub has not answered is sent again this often until it is answered
    # or expires (the broker's PUBACK does not mean the hub will get it).
    resend_seconds: float = 5.0
    telemetry_interval_seconds: float = 60.0
    queue_path: Path = Path("/var/lib/konak/daemon/queue.sqlite3")
    # After this long an intent is not sent (nor executed by the hub): a command said
    # before a long outage must not run long after it was said.
    intent_expiry_seconds: float = DEFAULT_INTENT_EXPIRY_SECONDS
    # Intent name -> its own expiry, from the table [hub.intent_expiry].
    intent_expiry_seconds_by_intent: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TtsSettings:
    """Text to speech with piper."""

    model: str = "piper-en-us-joe-medium"
    threads: int = 1
    memory_arena: bool = False
    earcons: bool = True


@dataclass(frozen=True)
class Settings:
    """The whole daemon configuration."""

    device: DeviceSettings
    models_dir: Path
    audio: AudioSettings = AudioSettings()
    wake: WakeSettings = WakeSettings()
    vad: VadSettings = VadSettings()
    stt: SttSettings = SttSettings()
    intent: IntentSettings = IntentSettings()
    hub: HubSettings = HubSettings()
    tts: TtsSettings = TtsSettings()
    watchdog_interval_seconds: float = 5.0


class _Section:
    """Typed access to one TOML table; remembers which keys were read."""

    def __init__(self, name: str, raw: object) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(f"[{name}] must be a table, not {type(raw).__name__}")
        self.name, self.raw, self.seen = name, cast("dict[str, Any]", raw), set[str]()

    def key(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def get(self, key: str, kind: type[T], default: T) -> T:
        self.seen.add(key)
        if key not in self.raw:
            return default
        value = self.raw[key]
        if kind is float and type(value) is int:
            value = float(value)
        if type(value) is not kind:
            raise ConfigError(
                f"{self.key(key)} must be {kind.__name__}, not {type(value).__name__} {value!r:.40}"
            )
        result: T = value
        return result

    def opt(self, key: str, kind: type[T]) -> T | None:
        self.seen.add(key)
        return self.get(key, kind, cast("T", None)) if key in self.raw else None

    def positive(self, key: str, default: float) -> float:
        value = self.get(key, float, default)
        if not value > 0:
            raise ConfigError(f"{self.key(key)} must be greater than 0, not {value}")
        return value

    def fraction(self, key: str, default: float) -> float:
        value = self.get(key, float, default)
        if not 0 <= value <= 1:
            raise ConfigError(f"{self.key(key)} must be between 0 and 1, not {value}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise ConfigError(f"{self.key(key)} must be one of {', '.join(choices)}, not {value!r}")
        return value

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.get(key, list, list(default))
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self.key(key)} must be a list of strings")
        return tuple(value)

    def positives(self, key: str) -> dict[str, float]:
        sub = _Section(self.key(key), self.get(key, dict, {}))
        return {name: sub.positive(name, 0.0) for name in sub.raw}

    def string_lists(self, key: str) -> dict[str, tuple[str, ...]]:
        sub = _Section(self.key(key), self.get(key, dict, {}))
        return {name: sub.strings(name, ()) for name in sub.raw}

    def done(self) -> None:
        unknown = sorted(set(self.raw) - self.seen)
        if unknown:
            raise ConfigError(f"unknown key {self.key(unknown[0])}")


def _path(section: _Section, key: str, base: Path) -> Path | None:
    value = section.opt(key, str)
    if value is None:
        return None
    path = Path(value)
    return path if path.is_absolute() else base / path


def _identifier(section: _Section, key: str) -> str:
    if key not in section.raw:
        raise ConfigError(f"{section.key(key)} is required")
    value = section.get(key, str, "")
    if not is_identifier(value):
        raise ConfigError(f"{section.key(key)} {value!r} is not a valid id (a-z 0-9 _ -)")
    return value


def _port(section: _Section, key: str, default: int) -> int:
    value = section.get(key, int, default)
    if not 0 < value < 65536:
        raise ConfigError(f"{section.key(key)} must be a TCP port, not {value}")
    return value


def _password(hub: _Section, base: Path) -> str | None:
    """The broker password: ``password_file`` (its first line), or ``password`` inline."""
    inline = hub.opt("password", str)
    path = _path(hub, "password_file", base)
    if path is None:
        return inline
    if inline is not None:
        raise ConfigError("hub.password and hub.password_file: give one, not both")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"hub.password_file: cannot read {path}: {exc}") from exc
    if not lines or not lines[0].strip():
        raise ConfigError(f"hub.password_file: {path} is empty")
    return lines[0].strip()


def _preroll(wake: _Section) -> float:
    value = wake.get("preroll_seconds", float, DEFAULT_PREROLL_SECONDS)
    if not MIN_PREROLL_SECONDS <= value <= MAX_PREROLL_SECONDS:
        raise ConfigError(
            f"{wake.key('preroll_seconds')} must be between {MIN_PREROLL_SECONDS} and "
            f"{MAX_PREROLL_SECONDS}, not {value}: the pre-roll must hold the whole wake word "
            "(the decoder finds where the command starts after it)"
        )
    return value


def parse(raw: Mapping[str, Any], *, base_dir: Path, default_models_dir: Path) -> Settings:
    """Validate a parsed TOML document; relative paths are relative to ``base_dir``."""
    top = _Section("", dict(raw))
    sec = {
        name: _Section(name, top.get(name, dict, {}))
        for name in ("device", "models", "audio", "wake", "vad", "stt", "intent", "hub", "tts")
    }
    d = sec["device"]
    device = DeviceSettings(
        tenant=_identifier(d, "tenant"),
        device=_identifier(d, "device"),
        name=d.opt("name", str),
        area=d.opt("area", str),
        language=d.get("language", str, "en"),
    )
    m = sec["models"]
    models_dir = _path(m, "dir", base_dir) or default_models_dir
    a = sec["audio"]
    audio = AudioSettings(
        source=a.choice("source", SOURCES, "pyaudio"),
        source_path=_path(a, "source_path", base_dir),
        source_rate_hz=int(a.positive("source_rate_hz", 16_000)),
        realtime=a.get("realtime", bool, False),
        input_device=a.opt("input_device", str),
        sink=a.choice("sink", SINKS, "pyaudio"),
        sink_path=_path(a, "sink_path", base_dir),
        output_device=a.opt("output_device", str),
    )
    if audio.source == "file" and audio.source_path is None:
        raise ConfigError("audio.source_path is required when audio.source = 'file'")
    if audio.sink == "wav" and audio.sink_path is None:
        raise ConfigError("audio.sink_path is required when audio.sink = 'wav'")
    w = sec["wake"]
    words = []
    for i, item in enumerate(w.get("words", list, [{"model": "oww-hey-jarvis"}])):
        ws = _Section(f"wake.words[{i}]", item)
        if "model" not in ws.raw:
            raise ConfigError(f"wake.words[{i}].model is required")
        words.append(WakeWord(ws.get("model", str, ""), ws.fraction("threshold", 0.5)))
        ws.done()
    if not words:
        raise ConfigError("wake.words must name at least one wake word model")
    wake = WakeSettings(
        words=tuple(words),
        refractory_seconds=w.positive("refractory_seconds", 2.0),
        preroll_seconds=_preroll(w),
        barge_in=w.get("barge_in", bool, False),
        stop_word=w.opt("stop_word", str),
    )
    v = sec["vad"]
    vad = VadSettings(
        model=v.get("model", str, "silero-vad-v6"),
        threshold=v.fraction("threshold", 0.5),
        end_silence_seconds=v.positive("end_silence_seconds", 0.7),
        max_command_seconds=v.positive("max_command_seconds", 10.0),
        no_speech_timeout_seconds=v.positive("no_speech_timeout_seconds", 4.0),
    )
    s = sec["stt"]
    if "reject_below" in s.raw:
        raise ConfigError("stt.reject_below is no longer used: the rejection is stt.min_score")
    stt = SttSettings(
        engine=s.choice("engine", STT_ENGINES, "pocketsphinx"),
        mode=s.choice("mode", STT_MODES, "grammar"),
        model=s.get("model", str, "pocketsphinx-en-us"),
        min_score=s.get("min_score", float, DEFAULT_MIN_SCORE),
    )
    it = sec["intent"]
    intent = IntentSettings(
        intents=it.strings("intents", DEFAULT_INTENTS),
        slot_lists=it.string_lists("slot_lists"),
        sentences=it.string_lists("sentences"),
    )
    h = sec["hub"]
    hub = HubSettings(
        host=h.get("host", str, "127.0.0.1"),
        port=_port(h, "port", 1883),
        username=h.opt("username", str),
        password=_password(h, base_dir),
        tls=h.get("tls", bool, False),
        ca_file=_path(h, "ca_file", base_dir),
        keepalive_seconds=int(h.positive("keepalive_seconds", 30)),
        session_expiry_seconds=int(h.positive("session_expiry_seconds", 86_400)),
        reconnect_seconds=h.positive("reconnect_seconds", 2.0),
        reply_timeout_seconds=h.positive("reply_timeout_seconds", 8.0),
        resend_seconds=h.positive("resend_seconds", 5.0),
        telemetry_interval_seconds=h.positive("telemetry_interval_seconds", 60.0),
        queue_path=_path(h, "queue_path", base_dir) or HubSettings.queue_path,
        intent_expiry_seconds=h.positive("intent_expiry_seconds", DEFAULT_INTENT_EXPIRY_SECONDS),
        intent_expiry_seconds_by_intent=h.positives("intent_expiry"),
    )
    credentials_file = _path(h, "credentials_file", base_dir)
    if credentials_file is not None:
        hub = _with_enrolment(hub, device, credentials_file)
    t = sec["tts"]
    threads = t.get("threads", int, 1)
    if threads < 1:
        raise ConfigError(f"tts.threads must be at least 1, not {threads}")
    tts = TtsSettings(
        model=t.get("model", str, "piper-en-us-joe-medium"),
        threads=threads,
        memory_arena=t.get("memory_arena", bool, False),
        earcons=t.get("earcons", bool, True),
    )
    watchdog = top.positive("watchdog_interval_seconds", 5.0)
    for section in (*sec.values(), top):
        section.done()
    return Settings(device, models_dir, audio, wake, vad, stt, intent, hub, tts, watchdog)


def intent_expiry_seconds(hub: HubSettings, intent_name: str | None) -> float:
    """How long an intent named ``intent_name`` (None: no intent matched) may wait to be sent."""
    if intent_name is None:
        return hub.intent_expiry_seconds
    return hub.intent_expiry_seconds_by_intent.get(intent_name, hub.intent_expiry_seconds)


def _with_enrolment(hub: HubSettings, device: DeviceSettings, path: Path) -> HubSettings:
    """The broker login from ``konak daemon enroll``'s credentials file."""
    from konak.provisioning.enroll import EnrollError, read_credentials

    try:
        login = read_credentials(path)
    except EnrollError as exc:
        raise ConfigError(f"hub.credentials_file: {exc.message}") from exc
    if (login.tenant, login.device) != (device.tenant, device.device):
        raise ConfigError(
            f"hub.credentials_file: {path} was issued to {login.tenant}/{login.device}, "
            f"but device is {device.tenant}/{device.device}"
        )
    return replace(
        hub, host=login.host, port=login.port, username=login.username, password=login.password
    )


def load(path: Path, *, default_models_dir: Path) -> Settings:
    """Read and validate the TOML file at ``path``."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    try:
        return parse(raw, base_dir=path.parent, default_models_dir=default_models_dir)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from exc

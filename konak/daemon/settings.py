"""The daemon's settings: one TOML file, validated once at start into frozen dataclasses.

Every problem (unknown key, wrong type, bad value, unreadable file) becomes one
:class:`ConfigError` line naming the file and the key (``file: section.key: reason``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field, replace
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    AliasPath,
    BeforeValidator,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic.dataclasses import dataclass

from konak.config import (
    SETTINGS,
    Bool,
    FilePath,
    Float,
    Int,
    Port,
    Positive,
    between,
    load_toml,
    one_of,
    take_secret,
    unknown_keys,
    validate,
)
from konak.errors import ConfigError
from konak.protocol.topics import is_identifier

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


def _identifier(value: str) -> str:
    if not is_identifier(value):
        raise ValueError(f"{value!r} is not a valid id (a-z 0-9 _ -)")
    return value


def _whole(value: Any) -> Any:
    """A whole number of seconds or hertz may be written as a float (30.0)."""
    return int(value) if type(value) is float and value > 0 else value


def _some_words(words: tuple[WakeWord, ...]) -> tuple[WakeWord, ...]:
    if not words:
        raise ValueError("must name at least one wake word model")
    return words


Identifier = Annotated[str, AfterValidator(_identifier)]
Fraction = Annotated[Float, between(0, 1)]
PositiveWhole = Annotated[Int, BeforeValidator(_whole), Field(gt=0)]


@dataclass(frozen=True, slots=True, config=SETTINGS)
class WakeWord:
    """One wake word model and its threshold."""

    model: str
    threshold: Fraction = 0.5


@dataclass(frozen=True, slots=True, config=SETTINGS)
class DeviceSettings:
    """Who the device is."""

    tenant: Identifier
    device: Identifier
    name: str | None = None
    area: str | None = None
    language: str = "en"


@dataclass(frozen=True, slots=True, config=SETTINGS)
class AudioSettings:
    """Where audio comes from and goes to."""

    source: Annotated[str, one_of(SOURCES)] = "pyaudio"
    source_path: FilePath | None = None
    source_rate_hz: PositiveWhole = 16_000
    realtime: Bool = False
    input_device: str | None = None
    sink: Annotated[str, one_of(SINKS)] = "pyaudio"
    sink_path: FilePath | None = None
    output_device: str | None = None

    def __post_init__(self) -> None:
        if self.source == "file" and self.source_path is None:
            raise ConfigError("audio.source_path is required when audio.source = 'file'")
        if self.sink == "wav" and self.sink_path is None:
            raise ConfigError("audio.sink_path is required when audio.sink = 'wav'")


@dataclass(frozen=True, slots=True, config=SETTINGS)
class WakeSettings:
    """Wake word detection."""

    words: Annotated[tuple[WakeWord, ...], AfterValidator(_some_words)] = (
        WakeWord("oww-hey-jarvis"),
    )
    refractory_seconds: Positive = 2.0
    preroll_seconds: Annotated[
        Float,
        between(
            MIN_PREROLL_SECONDS,
            MAX_PREROLL_SECONDS,
            ": the pre-roll must hold the whole wake word (the decoder finds where the "
            "command starts after it)",
        ),
    ] = DEFAULT_PREROLL_SECONDS
    barge_in: Bool = False
    stop_word: str | None = None


@dataclass(frozen=True, slots=True, config=SETTINGS)
class VadSettings:
    """Endpointing with silero."""

    model: str = "silero-vad-v6"
    threshold: Fraction = 0.5
    # Long enough to survive a comma pause (MODELS.md note 4).
    end_silence_seconds: Positive = 0.7
    max_command_seconds: Positive = 10.0
    no_speech_timeout_seconds: Positive = 4.0


@dataclass(frozen=True, slots=True, config=SETTINGS)
class SttSettings:
    """Speech to text."""

    engine: Annotated[str, one_of(STT_ENGINES)] = "pocketsphinx"
    mode: Annotated[str, one_of(STT_MODES)] = "grammar"
    model: str = "pocketsphinx-en-us"
    # Grammar mode: below this score (nats per frame: the grammar path against a phone
    # loop over the command, see stt.py) the speech is rejected. Higher rejects more.
    min_score: Annotated[Float, between(*MIN_SCORE_RANGE)] = DEFAULT_MIN_SCORE

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "reject_below" in data:
            raise ConfigError("stt.reject_below is no longer used: the rejection is stt.min_score")
        return data


@dataclass(frozen=True, slots=True, config=SETTINGS)
class IntentSettings:
    """Which intents and sentences the device understands."""

    intents: tuple[str, ...] = DEFAULT_INTENTS
    slot_lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sentences: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, config=SETTINGS)
class HubLinkSettings:
    """The daemon's MQTT link to the hub (``[hub]``)."""

    host: str = "127.0.0.1"
    port: Port = 1883
    username: str | None = None
    # Inline, or the first line of ``password_file``.
    password: str | None = field(default=None, repr=False)
    tls: Bool = False
    ca_file: FilePath | None = None
    keepalive_seconds: PositiveWhole = 30
    session_expiry_seconds: PositiveWhole = 86_400
    reconnect_seconds: Positive = 2.0
    reply_timeout_seconds: Positive = 8.0
    # A sent intent the hub has not answered is sent again this often until it is answered
    # or expires (the broker's PUBACK does not mean the hub will get it).
    resend_seconds: Positive = 5.0
    telemetry_interval_seconds: Positive = 60.0
    queue_path: FilePath = Path("/var/lib/konak/daemon/queue.sqlite3")
    # After this long an intent is not sent (nor executed by the hub): a command said
    # before a long outage must not run long after it was said.
    intent_expiry_seconds: Positive = DEFAULT_INTENT_EXPIRY_SECONDS
    # Intent name -> its own expiry, from the table [hub.intent_expiry].
    intent_expiry_seconds_by_intent: Mapping[str, Positive] = Field(
        default_factory=dict, validation_alias="intent_expiry"
    )
    # ``konak daemon enroll``'s file; its login replaces host, port, username and password.
    credentials_file: FilePath | None = None

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            take_secret(data, "password", info, first_line=True)
        return data


@dataclass(frozen=True, slots=True, config=SETTINGS)
class TtsSettings:
    """Text to speech with piper."""

    model: str = "piper-en-us-joe-medium"
    threads: Annotated[Int, Field(ge=1)] = 1
    memory_arena: Bool = False
    earcons: Bool = True


@dataclass(frozen=True, slots=True, config=SETTINGS)
class Settings:
    """The whole daemon configuration."""

    device: DeviceSettings
    # [models] dir; without it, the caller's default (validation context default_models_dir).
    models_dir: FilePath = Field(validation_alias=AliasPath("models", "dir"))
    # [models] accept_licenses: licences (beyond the commercial ones) an update_models from
    # the hub may install, as `konak models pull --accept-license` takes them.
    accept_licenses: tuple[str, ...] = Field(
        default=(), validation_alias=AliasPath("models", "accept_licenses")
    )
    audio: AudioSettings = AudioSettings()
    wake: WakeSettings = WakeSettings()
    vad: VadSettings = VadSettings()
    stt: SttSettings = SttSettings()
    intent: IntentSettings = IntentSettings()
    hub: HubLinkSettings = HubLinkSettings()
    tts: TtsSettings = TtsSettings()
    watchdog_interval_seconds: Positive = 5.0

    @model_validator(mode="before")
    @classmethod
    def _models_dir(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict):
            unknown_keys(data, {"models": ("dir", "accept_licenses")})
            models = data.get("models", {})
            if isinstance(models, dict) and "dir" not in models:
                default = (info.context or {}).get("default_models_dir")
                data = {**data, "models": {**models, "dir": default}}
        return data

    def __post_init__(self) -> None:
        if self.hub.credentials_file is not None:
            hub = _with_enrolment(self.hub, self.device, self.hub.credentials_file)
            object.__setattr__(self, "hub", hub)


def intent_expiry_seconds(hub: HubLinkSettings, intent_name: str | None) -> float:
    """How long an intent named ``intent_name`` (None: no intent matched) may wait to be sent."""
    if intent_name is None:
        return hub.intent_expiry_seconds
    return hub.intent_expiry_seconds_by_intent.get(intent_name, hub.intent_expiry_seconds)


def _with_enrolment(hub: HubLinkSettings, device: DeviceSettings, path: Path) -> HubLinkSettings:
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
        hub,
        host=login.host,
        port=login.port,
        username=login.username,
        password=login.password,
        credentials_file=None,
    )


def parse(raw: Mapping[str, Any], *, base_dir: Path, default_models_dir: Path) -> Settings:
    """Validate a parsed TOML document; relative paths are relative to ``base_dir``."""
    context = {"base_dir": base_dir, "default_models_dir": default_models_dir}
    return validate(dict(raw), Settings, context=context)


def load(path: Path, *, default_models_dir: Path) -> Settings:
    """Read and validate the TOML file at ``path``."""
    return load_toml(path, Settings, context={"default_models_dir": default_models_dir})

"""Every message of the wire contract as a typed, versioned, immutable class.

Each payload is one JSON object carrying ``v`` (the schema version), ``type`` (the
message kind, equal to the topic's last segment), ``tenant``, ``device`` and ``ts``
(seconds since the Unix epoch when the sender built it). Fields unknown to this
version are ignored, so a newer sender may add optional fields without a new
version; anything that changes the meaning of a field needs a new version.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from konak.protocol.topics import IDENTIFIER_PATTERN, Kind, build_topic

SCHEMA_VERSION: Literal[1] = 1
MAX_PAYLOAD_BYTES = 64 * 1024

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
TurnId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
ShortText = Annotated[str, StringConstraints(max_length=200)]
SpokenText = Annotated[str, StringConstraints(max_length=4000)]
Timestamp = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
SlotValue = str | int | float | bool
ReplyOutcome = Literal["ok", "no_route", "stand_down", "error", "limit", "duplicate", "expired"]


class Message(BaseModel):
    """Fields shared by every message."""

    model_config = ConfigDict(
        frozen=True,
        strict=True,
        extra="ignore",
        allow_inf_nan=False,
        str_max_length=16 * 1024,
    )

    KIND: ClassVar[Kind]

    v: Literal[1] = Field(default=SCHEMA_VERSION, description="Schema version.")
    tenant: Identifier = Field(description="Tenant id; must equal the topic's tenant.")
    device: Identifier = Field(description="Device id; must equal the topic's device.")
    ts: Timestamp = Field(
        default_factory=time.time,
        description="Seconds since the Unix epoch at the sender (the receiver's clock if absent).",
    )

    @property
    def topic(self) -> str:
        """The topic this message is published on."""
        return build_topic(self.tenant, self.device, self.KIND)

    def to_payload(self) -> bytes:
        """The message as UTF-8 JSON; raises ProtocolError if it exceeds 64 KiB."""
        from konak.protocol.codec import encode

        return encode(self)

    @classmethod
    def from_payload(cls, payload: bytes | str, *, topic: str | None = None) -> Self:
        """Parse and validate a payload of this message type; with ``topic``, also check
        that the topic's tenant, device and kind agree with it."""
        from konak.protocol.codec import decode_as

        return decode_as(cls, payload, topic=topic)


class ModelsUpdate(BaseModel):
    """How a device's last ``update_models`` command ended (reported in its status)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="ignore", allow_inf_nan=False)

    command_id: TurnId
    outcome: Literal["ok", "unchanged", "failed"] = Field(
        description=(
            "ok: new models verified and in use; unchanged: they were current already; "
            "failed: nothing changed, the models in use are the ones before the command."
        )
    )
    error: ShortText | None = Field(default=None, description="Error code when failed.")
    detail: ShortText | None = Field(default=None, description="What failed, in words.")
    models: dict[ShortText, ShortText] = Field(
        default_factory=dict, description="Model id -> digest (12 hex digits) now in use."
    )
    finished_at: Timestamp


class Status(Message):
    """Presence and identity of a device (retained; also the last will)."""

    KIND = Kind.STATUS
    type: Literal["status"] = "status"
    state: Literal["online", "offline", "error"]
    name: Name | None = None
    area: Name | None = None
    language: ShortText | None = None
    versions: dict[ShortText, ShortText] = Field(
        default_factory=dict, description="Component -> version, e.g. konak, onnxruntime."
    )
    models: list[ShortText] = Field(default_factory=list, description="Installed model ids.")
    capabilities: list[ShortText] = Field(
        default_factory=list, description="e.g. wake, stt, tts, timers, announce."
    )
    error: ShortText | None = Field(default=None, description="Error code when state=error.")
    config_revision: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="The revision of the hub's config message the device applied."
    )
    models_update: ModelsUpdate | None = Field(
        default=None, description="The result of the last update_models command, if any."
    )


class Telemetry(Message):
    """Periodic health figures of a device."""

    KIND = Kind.TELEMETRY
    type: Literal["telemetry"] = "telemetry"
    uptime_seconds: NonNegative
    cpu_percent: NonNegative = Field(description="Percent of one core, averaged.")
    rss_bytes: Annotated[int, Field(ge=0)]
    temperature_celsius: float | None = None
    queue_depth: Annotated[int, Field(ge=0)] = Field(
        default=0, description="Intents waiting in the offline queue."
    )
    dead_letters: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description=(
            "Intents in the device's dead-letter table: refused by the broker or expired, "
            "never sent again."
        ),
    )
    expired_intents: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="Of the dead letters, the intents that expired before they could be sent.",
    )
    dropped_audio_chunks: Annotated[int, Field(ge=0)] = Field(
        default=0, description="Microphone chunks dropped because processing fell behind."
    )
    stage_latency_ms: dict[ShortText, NonNegative] = Field(default_factory=dict)
    model_load_seconds: dict[ShortText, NonNegative] = Field(default_factory=dict)


class Wake(Message):
    """A wake word was detected."""

    KIND = Kind.WAKE
    type: Literal["wake"] = "wake"
    turn_id: TurnId
    wake_word: Name
    score: Fraction
    area: Name | None = None


class Intent(Message):
    """A recognised command; ``intent`` is null when the transcript matched none."""

    KIND = Kind.INTENT
    type: Literal["intent"] = "intent"
    turn_id: TurnId = Field(description="Unique per turn; the hub processes each turn once.")
    text: SpokenText = Field(description="The transcript.")
    intent: Name | None = None
    slots: dict[Name, SlotValue] = Field(default_factory=dict)
    language: ShortText = "en"
    area: Name | None = None
    wake_word: Name | None = None
    wake_score: Fraction | None = None
    speech_ended_at: Timestamp | None = Field(
        default=None, description="When the device found the end of speech (epoch seconds)."
    )
    continued: bool = Field(
        default=False, description="True when this turn continued a conversation (no wake word)."
    )
    expires_at: Timestamp | None = Field(
        default=None,
        description=(
            "After this moment (epoch seconds) the intent must not be executed: the device "
            "drops it unsent and the hub answers outcome expired. Compared with the "
            "receiver's clock."
        ),
    )


class Reply(Message):
    """The hub's answer to one turn."""

    KIND = Kind.REPLY
    type: Literal["reply"] = "reply"
    turn_id: TurnId
    text: SpokenText = ""
    outcome: ReplyOutcome = Field(
        default="ok",
        description=(
            "ok; no_route (no tool for the intent); stand_down (another device in the area "
            "answers: speak nothing); error; limit (a tenant quota); expired (arrived after "
            "its expires_at, not executed); duplicate (sent only by older hubs for a "
            "redelivery: speak nothing)."
        ),
    )
    repeat: bool = Field(
        default=False,
        description=(
            "This is the reply already sent for the turn, sent again because the intent "
            "arrived again (the device re-sends until it hears a reply): the intent was "
            "executed once. A device still waiting speaks it; one that already has it ignores it."
        ),
    )
    continue_conversation: bool = False

    @property
    def speak(self) -> bool:
        """Whether the device should speak this reply at all."""
        return self.outcome not in ("stand_down", "duplicate") and bool(self.text)


class WakeWordSetting(BaseModel):
    """One wake word and its detection threshold."""

    model_config = ConfigDict(frozen=True, strict=True, extra="ignore", allow_inf_nan=False)

    model: Name = Field(description="Wake word model id, e.g. hey_jarvis.")
    threshold: Fraction = 0.5


class Config(Message):
    """A device's configuration from the hub (retained)."""

    KIND = Kind.CONFIG
    type: Literal["config"] = "config"
    revision: Annotated[int, Field(ge=0)] = 0
    name: Name | None = None
    area: Name | None = None
    language: ShortText = "en"
    wake_words: list[WakeWordSetting] = Field(default_factory=list)
    sentences: dict[Name, list[SpokenText]] = Field(
        default_factory=dict, description="Intent name -> extra template sentences (hassil)."
    )
    slot_lists: dict[Name, list[Name]] = Field(
        default_factory=dict, description="Slot list name -> values (device names, areas)."
    )
    volume: Fraction = 1.0
    model_set: Name | None = None


class Cmd(Message):
    """A command for a device."""

    KIND = Kind.CMD
    type: Literal["cmd"] = "cmd"
    command_id: TurnId
    action: Literal["announce", "stop", "update_models"]
    text: SpokenText | None = Field(default=None, description="Required for announce.")
    model_set: Name | None = Field(default=None, description="For update_models.")

    @model_validator(mode="after")
    def _announce_has_text(self) -> Self:
        if self.action == "announce" and not self.text:
            raise ValueError("an announce command needs non-empty text")
        return self


MESSAGE_TYPES: dict[Kind, type[Message]] = {
    cls.KIND: cls for cls in (Status, Telemetry, Wake, Intent, Reply, Config, Cmd)
}


def message_type(kind: Kind | str) -> type[Message]:
    """The class of messages of ``kind``."""
    return MESSAGE_TYPES[Kind(kind)]


def example_payloads() -> dict[Kind, dict[str, Any]]:
    """One valid example of each message, for docs and tests."""
    base = {"tenant": "acme", "device": "kitchen-pi", "ts": 1_790_000_000.0}
    return {
        Kind.STATUS: {**base, "state": "online", "area": "kitchen", "models": ["hey_jarvis"]},
        Kind.TELEMETRY: {**base, "uptime_seconds": 12.5, "cpu_percent": 4.2, "rss_bytes": 1},
        Kind.WAKE: {**base, "turn_id": "t-0123456789", "wake_word": "hey_jarvis", "score": 0.9},
        Kind.INTENT: {
            **base,
            "turn_id": "t-0123456789",
            "text": "turn on the kitchen light",
            "intent": "HassTurnOn",
            "slots": {"name": "kitchen light"},
        },
        Kind.REPLY: {**base, "turn_id": "t-0123456789", "text": "Turned on the kitchen light."},
        Kind.CONFIG: {**base, "wake_words": [{"model": "hey_jarvis", "threshold": 0.5}]},
        Kind.CMD: {**base, "command_id": "c-0123456789", "action": "announce", "text": "Hi"},
    }

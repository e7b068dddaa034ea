"""MQTT topics of the wire contract: ``konak/v1/{tenant}/{device}/{kind}``.

Topics are built and parsed only here; no call site formats a topic by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from konak.protocol.errors import BAD_TOPIC, ProtocolError

ROOT: Final = "konak"
TOPIC_VERSION: Final = "v1"
PREFIX: Final = f"{ROOT}/{TOPIC_VERSION}"

# Tenant and device ids are slugs: safe in topics (no '/', '+', '#'), paths and logs.
IDENTIFIER_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


class Kind(StrEnum):
    """The kind of a message; the last segment of its topic."""

    STATUS = "status"
    TELEMETRY = "telemetry"
    WAKE = "wake"
    INTENT = "intent"
    REPLY = "reply"
    CONFIG = "config"
    CMD = "cmd"


Direction = Literal["device->hub", "hub->device"]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """How one kind of message travels: who sends it, its QoS and whether it is retained."""

    kind: Kind
    direction: Direction
    qos: Literal[0, 1]
    retain: bool
    summary: str

    @property
    def device_publishes(self) -> bool:
        """Whether a device may publish this kind (on its own topic only)."""
        return self.direction == "device->hub"


SPECS: Final[dict[Kind, TopicSpec]] = {
    spec.kind: spec
    for spec in (
        TopicSpec(
            Kind.STATUS,
            "device->hub",
            1,
            True,
            "Presence and identity: online/offline/error, versions, models, capabilities, area. "
            "The broker publishes the device's last will (state offline) if it vanishes.",
        ),
        TopicSpec(
            Kind.TELEMETRY,
            "device->hub",
            0,
            False,
            "Periodic health: CPU, memory, temperature, per-stage latencies, model load times.",
        ),
        TopicSpec(
            Kind.WAKE,
            "device->hub",
            0,
            False,
            "A wake word was heard, with its score; used for wake arbitration between devices.",
        ),
        TopicSpec(
            Kind.INTENT,
            "device->hub",
            1,
            False,
            "A recognised command (intent and slots, or only the transcript when no intent "
            "matched). Never audio.",
        ),
        TopicSpec(
            Kind.REPLY,
            "hub->device",
            1,
            False,
            "The hub's answer to one turn: text to speak, outcome, whether to listen again.",
        ),
        TopicSpec(
            Kind.CONFIG,
            "hub->device",
            1,
            True,
            "The device's configuration: name, area, language, wake words and thresholds, "
            "custom sentences and slot lists, volume, model set.",
        ),
        TopicSpec(
            Kind.CMD,
            "hub->device",
            1,
            False,
            "A command for the device: announce text, stop playback, update models.",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic."""

    tenant: str
    device: str
    kind: Kind

    def __str__(self) -> str:
        return f"{PREFIX}/{self.tenant}/{self.device}/{self.kind.value}"

    @property
    def spec(self) -> TopicSpec:
        """How this topic's messages travel."""
        return SPECS[self.kind]


def is_identifier(value: object) -> bool:
    """Whether ``value`` is a valid tenant or device id."""
    return isinstance(value, str) and _IDENTIFIER.fullmatch(value) is not None


def _check_identifier(what: str, value: str) -> None:
    if not is_identifier(value):
        raise ProtocolError(
            BAD_TOPIC,
            f"invalid {what} id {value[:80]!r}: expected 1-63 characters of a-z, 0-9, '_' "
            "or '-', starting with a letter or digit",
            field=what,
        )


def build_topic(tenant: str, device: str, kind: Kind | str) -> str:
    """The topic for ``kind`` messages of one device."""
    _check_identifier("tenant", tenant)
    _check_identifier("device", device)
    try:
        kind = Kind(kind)
    except ValueError:
        raise ProtocolError(BAD_TOPIC, f"unknown message kind {str(kind)[:40]!r}") from None
    return str(Topic(tenant, device, kind))


def parse_topic(topic: str) -> Topic:
    """Parse a concrete topic (no wildcards) into tenant, device and kind."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise ProtocolError(
            BAD_TOPIC,
            f"topic {topic[:200]!r} is not of the form {PREFIX}/<tenant>/<device>/<kind>",
        )
    _, _, tenant, device, kind = parts
    _check_identifier("tenant", tenant)
    _check_identifier("device", device)
    try:
        return Topic(tenant, device, Kind(kind))
    except ValueError:
        known = ", ".join(k.value for k in Kind)
        raise ProtocolError(
            BAD_TOPIC, f"unknown message kind {kind[:40]!r} in topic (known: {known})"
        ) from None


def subscription(kind: Kind | None = None, *, tenant: str = "+", device: str = "+") -> str:
    """A subscription filter; ``+`` (the default) matches any tenant or device."""
    for what, value in (("tenant", tenant), ("device", device)):
        if value != "+":
            _check_identifier(what, value)
    last = "+" if kind is None else Kind(kind).value
    return f"{PREFIX}/{tenant}/{device}/{last}"


AclAccess = Literal["read", "write"]


def device_acl(tenant: str, device: str) -> list[tuple[AclAccess, str]]:
    """The exact topics a device's broker identity may use: publish its own device->hub
    kinds, subscribe to its own hub->device kinds, nothing else."""
    return [
        ("write" if spec.device_publishes else "read", build_topic(tenant, device, spec.kind))
        for spec in SPECS.values()
    ]

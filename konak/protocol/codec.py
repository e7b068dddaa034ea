"""Encoding and decoding of wire messages; the only place payload bytes are parsed.

Whatever a peer sends, decoding raises :class:`ProtocolError` and nothing else.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn, TypeVar

from pydantic import ValidationError

from konak.config import field_path
from konak.protocol import errors as e
from konak.protocol.errors import ProtocolError
from konak.protocol.messages import MAX_PAYLOAD_BYTES, SCHEMA_VERSION, Message, message_type
from konak.protocol.topics import Kind, parse_topic

M = TypeVar("M", bound=Message)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _load_object(payload: bytes | str) -> dict[str, Any]:
    raw = payload.encode() if isinstance(payload, str) else payload
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(
            e.OVERSIZE, f"payload of {len(raw)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit"
        )
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise ProtocolError(e.MALFORMED_JSON, f"payload is not UTF-8: {exc.reason}") from exc
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise ProtocolError(e.MALFORMED_JSON, f"payload is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ProtocolError(e.MALFORMED_JSON, "payload is nested too deeply") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(
            e.NOT_AN_OBJECT, f"payload must be a JSON object, not {type(obj).__name__}"
        )
    return obj


def _check_version(obj: dict[str, Any]) -> None:
    if "v" not in obj:
        raise ProtocolError(e.MISSING_FIELD, "payload has no schema version 'v'", field="v")
    version = obj["v"]
    if type(version) is not int:
        raise ProtocolError(
            e.WRONG_TYPE, f"schema version 'v' must be an integer, not {version!r:.40}", field="v"
        )
    if version != SCHEMA_VERSION:
        raise ProtocolError(
            e.UNKNOWN_VERSION,
            f"unknown schema version {version} (this build speaks version {SCHEMA_VERSION})",
            field="v",
        )


def _kind_of(obj: dict[str, Any]) -> Kind:
    if "type" not in obj:
        raise ProtocolError(e.MISSING_FIELD, "payload has no 'type'", field="type")
    value = obj["type"]
    if not isinstance(value, str):
        raise ProtocolError(e.WRONG_TYPE, "'type' must be a string", field="type")
    try:
        return Kind(value)
    except ValueError:
        raise ProtocolError(
            e.INVALID_VALUE, f"unknown message type {value[:40]!r}", field="type"
        ) from None


def _from_validation_error(cls: type[Message], exc: ValidationError) -> ProtocolError:
    first = exc.errors(include_url=False, include_input=False)[0]
    field = field_path(first["loc"])
    kind = first["type"]
    if kind == "missing":
        code = e.MISSING_FIELD
    elif kind.endswith("_type"):
        code = e.WRONG_TYPE
    else:
        code = e.INVALID_VALUE
    where = f"field {field!r}" if field else "payload"
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    return ProtocolError(
        code, f"{cls.KIND.value} message: {where}: {first['msg']}{more}", field=field
    )


def _validate(cls: type[M], obj: dict[str, Any]) -> M:
    try:
        return cls.model_validate(obj)
    except ValidationError as exc:
        raise _from_validation_error(cls, exc) from exc
    except RecursionError as exc:
        raise ProtocolError(e.MALFORMED_JSON, "payload is nested too deeply") from exc


def _check_topic(msg: Message, topic: str) -> None:
    parsed = parse_topic(topic)
    if parsed.kind is not msg.KIND:
        raise ProtocolError(
            e.TYPE_MISMATCH,
            f"a {msg.KIND.value} message was sent on a {parsed.kind.value} topic",
            field="type",
        )
    for field in ("tenant", "device"):
        if getattr(parsed, field) != getattr(msg, field):
            raise ProtocolError(
                e.TOPIC_MISMATCH,
                f"payload {field} {getattr(msg, field)!r} disagrees with the topic's "
                f"{field} {getattr(parsed, field)!r}",
                field=field,
            )


def decode(topic: str, payload: bytes | str) -> Message:
    """Parse a message received on ``topic``: its class follows from the topic's kind."""
    kind = parse_topic(topic).kind
    return decode_as(message_type(kind), payload, topic=topic)


def decode_as(cls: type[M], payload: bytes | str, *, topic: str | None = None) -> M:
    """Parse a payload that must be a ``cls`` message."""
    obj = _load_object(payload)
    _check_version(obj)
    kind = _kind_of(obj)
    if kind is not cls.KIND:
        raise ProtocolError(
            e.TYPE_MISMATCH,
            f"'type' is {kind.value!r} but a {cls.KIND.value} message was expected",
            field="type",
        )
    msg = _validate(cls, obj)
    if topic is not None:
        _check_topic(msg, topic)
    return msg


def encode(msg: Message) -> bytes:
    """Serialise ``msg``; raises ProtocolError when the result exceeds 64 KiB."""
    raw = msg.model_dump_json().encode()
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(
            e.OVERSIZE,
            f"{msg.KIND.value} message of {len(raw)} bytes exceeds the "
            f"{MAX_PAYLOAD_BYTES}-byte limit",
        )
    return raw

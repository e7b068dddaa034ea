from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konak.protocol import (
    MAX_PAYLOAD_BYTES,
    MESSAGE_TYPES,
    Cmd,
    Intent,
    Kind,
    Message,
    ProtocolError,
    Reply,
    Status,
    Telemetry,
    build_topic,
    decode,
    message_type,
)
from konak.protocol.errors import ALL_CODES
from konak.protocol.messages import example_payloads

from .strategies import messages

TOPIC = "konak/v1/acme/kitchen/intent"


def intent_payload(**changes: Any) -> dict[str, Any]:
    payload = {
        "v": 1,
        "type": "intent",
        "tenant": "acme",
        "device": "kitchen",
        "ts": 1.0,
        "turn_id": "t-0123456789",
        "text": "turn on the kitchen light",
        "intent": "HassTurnOn",
        "slots": {"name": "kitchen light"},
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not ...}


def raw(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def code_of(topic: str, payload: bytes | str) -> str:
    with pytest.raises(ProtocolError) as info:
        decode(topic, payload)
    assert info.value.message, "every error explains itself"
    return info.value.code


@pytest.mark.parametrize("kind", list(Kind))
def test_every_message_type_round_trips_its_example(kind: Kind) -> None:
    msg = message_type(kind).model_validate(example_payloads()[kind])
    again = decode(msg.topic, msg.to_payload())
    assert again == msg
    assert type(again) is MESSAGE_TYPES[kind]
    assert msg.topic == build_topic("acme", "kitchen-pi", kind)


@given(messages)
def test_any_valid_message_round_trips_through_its_topic(msg: Message) -> None:
    assert decode(msg.topic, msg.to_payload()) == msg
    assert type(msg).from_payload(msg.to_payload(), topic=msg.topic) == msg


def test_the_payload_carries_version_type_tenant_and_device() -> None:
    obj = json.loads(Reply(tenant="acme", device="d1", turn_id="t-0123456789").to_payload())
    assert (obj["v"], obj["type"], obj["tenant"], obj["device"]) == (1, "reply", "acme", "d1")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"", "malformed_json"),
        (b"\xff\xfe{}", "malformed_json"),
        (b'{"v": NaN}', "malformed_json"),
        (b"[" * 50_000 + b"]" * 50_000, "oversize"),
        (b"[" * 20_000 + b"]" * 20_000, "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"text"', "not_an_object"),
        (b"null", "not_an_object"),
    ],
)
def test_malformed_json_raises_one_typed_error(payload: bytes, code: str) -> None:
    assert code_of(TOPIC, payload) == code


def test_a_payload_over_64_kib_is_refused_as_oversize() -> None:
    big = raw(intent_payload(text="x" * MAX_PAYLOAD_BYTES))
    assert code_of(TOPIC, big) == "oversize"


def test_encoding_a_message_over_64_kib_is_refused() -> None:
    config = message_type(Kind.CONFIG).model_validate(
        {"tenant": "a", "device": "b", "sentences": {"HassTurnOn": ["x" * 4000] * 20}}
    )
    with pytest.raises(ProtocolError) as info:
        config.to_payload()
    assert info.value.code == "oversize"


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"v": ...}, "missing_field", "v"),
        ({"v": 2}, "unknown_version", "v"),
        ({"v": 0}, "unknown_version", "v"),
        ({"v": "1"}, "wrong_type", "v"),
        ({"v": 1.0}, "wrong_type", "v"),
        ({"type": ...}, "missing_field", "type"),
        ({"type": "reply"}, "type_mismatch", "type"),
        ({"type": "telepathy"}, "invalid_value", "type"),
        ({"type": 7}, "wrong_type", "type"),
        ({"turn_id": ...}, "missing_field", "turn_id"),
        ({"text": ...}, "missing_field", "text"),
        ({"tenant": ...}, "missing_field", "tenant"),
        ({"turn_id": 12345678}, "wrong_type", "turn_id"),
        ({"text": ["a"]}, "wrong_type", "text"),
        ({"slots": "name=kitchen"}, "wrong_type", "slots"),
        ({"continued": "yes"}, "wrong_type", "continued"),
        ({"continued": 1}, "wrong_type", "continued"),
        ({"wake_score": "0.9"}, "wrong_type", "wake_score"),
        ({"wake_score": 1.5}, "invalid_value", "wake_score"),
        ({"turn_id": "short"}, "invalid_value", "turn_id"),
        ({"turn_id": "has/slash-123"}, "invalid_value", "turn_id"),
        ({"tenant": "Acme"}, "invalid_value", "tenant"),
        ({"ts": -1}, "invalid_value", "ts"),
        ({"slots": {"name": {"nested": 1}}}, "wrong_type", "slots.name"),
        ({"expires_at": "soon"}, "wrong_type", "expires_at"),
        ({"expires_at": -5.0}, "invalid_value", "expires_at"),
    ],
)
def test_each_bad_field_raises_one_typed_error_naming_it(
    changes: dict[str, Any], code: str, field: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(TOPIC, raw(intent_payload(**changes)))
    assert (info.value.code, info.value.field) == (code, field)
    assert field.split(".")[0] in info.value.message


@pytest.mark.parametrize(
    ("topic", "code"),
    [
        ("konak/v1/other/kitchen/intent", "topic_mismatch"),
        ("konak/v1/acme/hall/intent", "topic_mismatch"),
        ("konak/v1/acme/kitchen/reply", "type_mismatch"),
        ("konak/v1/acme/kitchen", "bad_topic"),
    ],
)
def test_a_topic_that_disagrees_with_the_payload_is_refused(topic: str, code: str) -> None:
    assert code_of(topic, raw(intent_payload())) == code


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    msg = decode(TOPIC, raw(intent_payload(future_field={"x": 1})))
    assert isinstance(msg, Intent)
    assert msg.intent == "HassTurnOn"


def test_an_intent_from_a_sender_without_expiry_never_expires() -> None:
    msg = Intent.from_payload(raw(intent_payload()), topic=TOPIC)
    assert msg.expires_at is None
    later = Intent.from_payload(raw(intent_payload(expires_at=1_790_000_030.5)), topic=TOPIC)
    assert later.expires_at == 1_790_000_030.5


def test_telemetry_from_a_sender_without_the_loss_counters_reads_them_as_zero() -> None:
    payload = {
        "v": 1,
        "type": "telemetry",
        "tenant": "acme",
        "device": "kitchen",
        "uptime_seconds": 1.0,
        "cpu_percent": 1.0,
        "rss_bytes": 1,
    }
    msg = Telemetry.from_payload(raw(payload), topic="konak/v1/acme/kitchen/telemetry")
    assert (msg.dead_letters, msg.expired_intents, msg.dropped_audio_chunks) == (0, 0, 0)
    with pytest.raises(ProtocolError) as info:
        Telemetry.from_payload(raw({**payload, "dead_letters": -1}))
    assert (info.value.code, info.value.field) == ("invalid_value", "dead_letters")


def test_an_announce_command_without_text_is_refused() -> None:
    payload = {
        "v": 1,
        "type": "cmd",
        "tenant": "a",
        "device": "b",
        "command_id": "c-12345678",
        "action": "announce",
    }
    with pytest.raises(ProtocolError) as info:
        Cmd.from_payload(raw(payload))
    assert info.value.code == "invalid_value"
    assert "announce" in info.value.message


def test_a_stand_down_reply_is_not_spoken() -> None:
    reply = Reply(tenant="a", device="b", turn_id="t-12345678", text="x", outcome="stand_down")
    assert not reply.speak
    assert Reply(tenant="a", device="b", turn_id="t-12345678", text="Done.").speak


def test_an_expired_reply_is_spoken_so_the_user_knows_nothing_was_done() -> None:
    late = Reply(tenant="a", device="b", turn_id="t-12345678", text="Too late.", outcome="expired")
    assert late.speak


def test_messages_are_immutable() -> None:
    status = Status(tenant="a", device="b", state="online")
    with pytest.raises(Exception, match="frozen"):
        status.state = "offline"  # type: ignore[misc]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)
field_names = st.sampled_from(
    [
        "v",
        "type",
        "tenant",
        "device",
        "ts",
        "turn_id",
        "text",
        "intent",
        "slots",
        "state",
        "action",
        "wake_words",
        "sentences",
        "score",
        "outcome",
        "rss_bytes",
    ]
)
kinds = st.sampled_from([k.value for k in Kind])
topics = st.one_of(
    st.builds(lambda k: f"konak/v1/acme/kitchen/{k}", kinds),
    st.text(max_size=60),
)


@given(topic=topics, payload=st.binary(max_size=512))
def test_no_exception_but_protocol_error_escapes_parsing_random_bytes(
    topic: str, payload: bytes
) -> None:
    with contextlib.suppress(ProtocolError):
        decode(topic, payload)


@given(
    topic=topics,
    obj=st.dictionaries(field_names, json_values, max_size=10),
    version=st.one_of(st.just(1), json_values),
    kind=st.one_of(kinds, json_values),
)
def test_no_exception_but_protocol_error_escapes_parsing_hostile_objects(
    topic: str, obj: dict[str, Any], version: Any, kind: Any
) -> None:
    obj = {"v": version, "type": kind, "tenant": "acme", "device": "kitchen", **obj}
    try:
        msg = decode(topic, json.dumps(obj))
    except ProtocolError as exc:
        error: ProtocolError | None = exc
    else:
        error = None
        assert msg.topic == topic
    assert error is None or error.code in ALL_CODES


@given(messages, st.data())
def test_mutating_one_field_of_a_valid_message_raises_only_protocol_error(
    msg: Message, data: st.DataObject
) -> None:
    obj = json.loads(msg.to_payload())
    key = data.draw(st.sampled_from(sorted(obj)))
    obj[key] = data.draw(json_values)
    with contextlib.suppress(ProtocolError):
        decode(msg.topic, json.dumps(obj))

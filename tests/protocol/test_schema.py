from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given

from konak.protocol import Kind, Message
from konak.protocol.messages import example_payloads
from konak.protocol.schema import json_schema, protocol_markdown, write_docs

from .strategies import messages

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("kind", list(Kind))
def test_the_committed_json_schema_is_the_generated_one(kind: Kind) -> None:
    committed = json.loads((DOCS / "protocol" / f"{kind.value}.schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema(kind))), (
        "docs/protocol is stale: run `konak protocol docs`"
    )


def test_the_committed_protocol_page_is_the_generated_one() -> None:
    assert (DOCS / "protocol.md").read_text() == protocol_markdown(), (
        "docs/protocol.md is stale: run `konak protocol docs`"
    )


def test_write_docs_writes_a_schema_per_kind_and_the_page(tmp_path: Path) -> None:
    written = {p.relative_to(tmp_path).as_posix() for p in write_docs(tmp_path)}
    assert written == {f"protocol/{k.value}.schema.json" for k in Kind} | {"protocol.md"}


@pytest.mark.parametrize("kind", list(Kind))
def test_each_example_is_valid_against_its_schema(kind: Kind) -> None:
    payload = {"v": 1, "type": kind.value, **example_payloads()[kind]}
    jsonschema.Draft202012Validator(json_schema(kind)).validate(payload)


@given(messages)
def test_every_encoded_message_is_valid_against_its_schema(msg: Message) -> None:
    schema = json_schema(msg.KIND)
    jsonschema.Draft202012Validator(schema).validate(json.loads(msg.to_payload()))


def test_the_schema_rejects_what_the_classes_reject() -> None:
    validator = jsonschema.Draft202012Validator(json_schema(Kind.INTENT))
    bad = {"v": 1, "type": "intent", "tenant": "Acme!", "device": "d", "turn_id": "x", "text": 3}
    assert len(list(validator.iter_errors(bad))) >= 3

from __future__ import annotations

from typing import Any

import pytest

from konak.edge_models.errors import MANIFEST_INVALID, UNKNOWN_MODEL, ModelError
from konak.edge_models.manifest import (
    SCHEMA_VERSION,
    check_references,
    load_packaged,
    parse_manifest,
)
from konak.errors import ConfigError


def test_the_packaged_manifest_validates_and_pins_every_file() -> None:
    manifest = load_packaged()
    assert manifest.schema_version == SCHEMA_VERSION
    for model in manifest.models.values():
        assert model.files or model.archive_pin, model.id
        assert all(len(f.sha256) == 64 and f.size > 0 for f in model.files)
    required = {
        "oww-melspectrogram",
        "oww-embedding",
        "oww-hey-jarvis",
        "oww-alexa",
        "oww-hey-mycroft",
        "oww-hey-rhasspy",
        "silero-vad-v6",
        "silero-vad-v6-16k-op15",
        "piper-en-us-joe-medium",
        "pocketsphinx-en-us",
        "vosk-small-en-us-0.15",
        "vosk-ko",
    }
    assert required <= set(manifest.models)


def test_the_default_set_is_the_small_english_device_without_the_korean_model() -> None:
    default = {m.id for m in load_packaged().resolve(["default"])}
    assert "vosk-ko" not in default
    assert {
        "oww-melspectrogram",
        "oww-embedding",
        "oww-hey-jarvis",
        "silero-vad-v6",
        "piper-en-us-joe-medium",
        "pocketsphinx-en-us",
    } <= default
    minimal = load_packaged().resolve(["minimal"])
    assert sum(m.size_bytes for m in minimal) < sum(
        m.size_bytes for m in load_packaged().resolve(["default"])
    )


def test_every_registry_model_lists_its_upstream_before_its_mirror() -> None:
    for model in load_packaged().models.values():
        kinds = [s.kind for s in model.sources]
        if "url" in kinds and any(s.is_registry for s in model.sources):
            assert kinds.index("url") < min(
                i for i, s in enumerate(model.sources) if s.is_registry
            ), model.id


def test_openwakeword_models_carry_the_stricter_non_commercial_license() -> None:
    for model in load_packaged().models.values():
        if model.engine == "openwakeword":
            assert (model.license, model.commercial_use) == ("CC-BY-NC-SA-4.0", False)


def _doc(entry: dict[str, Any]) -> dict[str, Any]:
    return {"schema_version": 2, "models": {"m1": entry}, "sets": {}}


def _entry() -> dict[str, Any]:
    return {
        "role": "vad",
        "engine": "e",
        "language": "en",
        "license": "MIT",
        "commercial_use": True,
        "targets": ["cpu"],
        "files": [{"path": "a.onnx", "sha256": "a" * 64, "size": 3}],
        "sources": [{"kind": "url", "url": "http://x/{path}"}],
    }


def test_a_model_entry_missing_a_field_is_rejected_naming_the_model_and_field() -> None:
    entry = _entry()
    del entry["files"]
    with pytest.raises(ModelError) as caught:
        parse_manifest(_doc(entry), "t.toml")
    assert caught.value.code == MANIFEST_INVALID
    assert "models.m1" in caught.value.message
    assert "files" in caught.value.message


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("role", "speaker", "role"),
        ("targets", ["mainframe"], "targets"),
        ("files", [{"path": "../x", "sha256": "a" * 64, "size": 1}], "relative"),
        ("files", [{"path": "x", "sha256": "XYZ", "size": 1}], "sha256"),
        ("sources", [{"kind": "ftp"}], "kind"),
        ("sources", [{"kind": "url", "url": "http://x/file"}], "{path}"),
        ("sources", [{"kind": "url", "url": "http://x/{path}", "member": "m.zip"}], "member"),
        ("sources", [{"kind": "url", "url": "http://x/{path}", "convert": "torch"}], "convert"),
    ],
)
def test_a_malformed_field_is_rejected_with_the_reason(
    field: str, value: Any, fragment: str
) -> None:
    entry = _entry()
    entry[field] = value
    with pytest.raises(ModelError, match=r"models\.m1") as caught:
        parse_manifest(_doc(entry), "t.toml")
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("change", "line"),
    [
        ({"colour": "red"}, "models.m1.colour: unknown key"),
        ({"id": "m2"}, "models.m1.id: unknown key"),
        ({"commercial_use": "yes"}, "models.m1.commercial_use: must be true or false, not string"),
        (
            {"files": [{"path": "a.onnx", "sha256": "a" * 64, "size": "3"}]},
            "models.m1.files[0].size: must be an integer, not string",
        ),
        (
            {"sources": [{"kind": "pypi", "package": "p"}]},
            "models.m1.sources[0].version: required for a pypi source",
        ),
        ({"entry": "b.onnx"}, "models.m1.entry: 'b.onnx' is not one of its files"),
    ],
)
def test_a_wrong_entry_is_one_config_line_naming_the_file_and_the_key(
    change: dict[str, Any], line: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_manifest(_doc({**_entry(), **change}), "t.toml")
    assert isinstance(caught.value, ModelError)
    assert caught.value.code == MANIFEST_INVALID
    assert caught.value.message == f"manifest t.toml: {line}"


@pytest.mark.parametrize(
    ("doc", "line"),
    [
        ({"models": {"Bad/Id": {}}}, "models.Bad/Id: id must be lowercase letters, digits,"),
        ({"sets": {"s": {"models": "m1"}}}, "sets.s.models: must be a list, not string"),
        ({"choices": {"m1": {"reason": "fast"}}}, "choices.m1.per_target: required"),
        ({"colour": "red"}, "colour: unknown key"),
    ],
)
def test_a_wrong_table_is_one_line_naming_it(doc: dict[str, Any], line: str) -> None:
    with pytest.raises(ModelError) as caught:
        parse_manifest({"schema_version": 2, **doc}, "t.toml")
    assert caught.value.message.startswith(f"manifest t.toml: {line}")


def test_a_v1_manifest_is_migrated_to_the_current_schema() -> None:
    entry = _entry()
    del entry["sources"], entry["commercial_use"]
    entry["license"] = "CC-BY-NC-4.0"
    entry["urls"] = ["http://upstream/{path}"]
    manifest = parse_manifest({"schema_version": 1, "models": {"m1": entry}}, "v1.toml")
    model = manifest.model("m1")
    assert model.commercial_use is False
    assert [s.url for s in model.sources] == ["http://upstream/{path}"]


def test_a_manifest_newer_than_konak_is_refused() -> None:
    with pytest.raises(ModelError, match="newer than this konak") as caught:
        parse_manifest({"schema_version": SCHEMA_VERSION + 1, "models": {}}, "new.toml")
    assert caught.value.code == MANIFEST_INVALID


def test_an_unknown_model_id_is_refused_with_suggestions() -> None:
    with pytest.raises(ModelError, match="did you mean oww-hey-jarvis") as caught:
        load_packaged().resolve(["oww-hey-jarvsi"])
    assert caught.value.code == UNKNOWN_MODEL


def test_a_set_naming_an_unknown_model_is_invalid() -> None:
    doc = _doc(_entry())
    doc["sets"] = {"s": {"models": ["m1", "ghost"]}}
    with pytest.raises(ModelError, match="ghost"):
        check_references(parse_manifest(doc, "t.toml"), "t.toml")

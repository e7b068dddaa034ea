"""The daemon's config file is validated once, with one clear message per problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from konak.daemon.settings import Settings, intent_expiry_seconds, load, parse
from konak.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "konak" / "daemon" / "daemon.example.toml"


def _parse(**sections: Any) -> Settings:
    raw: dict[str, Any] = {"device": {"tenant": "acme", "device": "pi"}, **sections}
    return parse(raw, base_dir=Path("/etc/konak"), default_models_dir=Path("/models"))


def test_the_example_config_is_valid_and_fully_read() -> None:
    settings = load(EXAMPLE, default_models_dir=Path("/models"))
    assert settings.device.tenant == "acme"
    assert [w.model for w in settings.wake.words] == ["oww-hey-jarvis", "oww-alexa"]
    assert settings.intent.slot_lists["area"] == ("kitchen", "bedroom", "living room")
    assert intent_expiry_seconds(settings.hub, "HassTurnOn") == 5.0


def test_defaults_fill_everything_but_the_device_identity() -> None:
    settings = _parse()
    assert settings.models_dir == Path("/models")
    assert settings.vad.end_silence_seconds > 0.3  # survives a comma pause
    assert settings.stt.mode == "grammar"


def test_relative_paths_are_relative_to_the_config_file() -> None:
    settings = _parse(audio={"source": "file", "source_path": "in.wav", "sink": "none"})
    assert settings.audio.source_path == Path("/etc/konak/in.wav")


def test_an_intent_expires_after_its_own_expiry_or_else_the_default() -> None:
    hub = _parse(hub={"intent_expiry_seconds": 20, "intent_expiry": {"HassTurnOn": 90}}).hub
    assert intent_expiry_seconds(hub, "HassTurnOn") == 90.0
    assert intent_expiry_seconds(hub, "HassTurnOff") == 20.0
    assert intent_expiry_seconds(hub, None) == 20.0
    assert intent_expiry_seconds(_parse().hub, "HassTurnOn") == 30.0


def test_an_integer_is_accepted_where_a_float_is_expected() -> None:
    assert _parse(vad={"end_silence_seconds": 1}).vad.end_silence_seconds == 1.0


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"colour": 1}, "colour: unknown key"),
        ({"vad": {"treshold": 0.5}}, "vad.treshold: unknown key"),
        ({"vad": {"threshold": "high"}}, "vad.threshold: must be a number, not string"),
        ({"vad": {"threshold": 1.5}}, "vad.threshold: must be between 0 and 1"),
        ({"vad": {"end_silence_seconds": 0}}, "vad.end_silence_seconds: must be greater than 0"),
        ({"hub": {"port": 70000}}, "hub.port: must be a TCP port"),
        ({"hub": {"port": True}}, "hub.port: must be an integer, not boolean"),
        ({"stt": {"engine": "whisper"}}, "stt.engine: must be one of pocketsphinx, vosk"),
        ({"audio": {"source": "file"}}, "audio.source_path is required"),
        ({"audio": {"sink": "wav"}}, "audio.sink_path is required"),
        ({"wake": {"words": []}}, "wake.words: must name at least one"),
        ({"wake": {"words": [{"threshold": 0.5}]}}, "wake.words[0].model: required"),
        ({"wake": {"words": [{"model": "x", "level": 1}]}}, "wake.words[0].level: unknown key"),
        ({"intent": {"slot_lists": {"area": [1]}}}, "intent.slot_lists.area[0]: must be a string"),
        ({"tts": {"threads": 0}}, "tts.threads: must be greater than or equal to 1"),
        (
            {"wake": {"preroll_seconds": 0.5}},
            "wake.preroll_seconds: must be between 1.0 and 3.0, not 0.5: the pre-roll must "
            "hold the whole wake word",
        ),
        ({"wake": {"preroll_seconds": 60}}, "wake.preroll_seconds: must be between 1.0 and 3.0"),
        ({"stt": {"min_score": "low"}}, "stt.min_score: must be a number, not string"),
        ({"hub": "localhost"}, "hub: must be a table, not string"),
        (
            {"hub": {"intent_expiry_seconds": 0}},
            "hub.intent_expiry_seconds: must be greater than 0",
        ),
        ({"hub": {"intent_expiry": 30}}, "hub.intent_expiry: must be a table, not integer"),
        (
            {"hub": {"intent_expiry": {"HassTurnOn": -1}}},
            "hub.intent_expiry.HassTurnOn: must be greater than 0",
        ),
        (
            {"hub": {"intent_expiry": {"HassTurnOn": "1m"}}},
            "hub.intent_expiry.HassTurnOn: must be a number, not string",
        ),
    ],
)
def test_each_invalid_value_names_its_key(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _parse(**sections)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ({"device": "pi"}, "device.tenant: required"),
        ({"tenant": "Acme Corp", "device": "pi"}, "device.tenant: 'Acme Corp' is not a valid id"),
    ],
)
def test_the_device_identity_is_required_and_checked(device: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse({"device": device}, base_dir=Path("/"), default_models_dir=Path("/m"))


def test_a_file_that_is_not_toml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "daemon.toml"
    path.write_text("[device\n")
    with pytest.raises(ConfigError, match=f"{path}: not valid TOML"):
        load(path, default_models_dir=Path("/m"))


def test_an_error_in_a_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "daemon.toml"
    path.write_text("[device]\ntenant = 'acme'\ndevice = 'pi'\nvolume = 3\n")
    with pytest.raises(ConfigError) as info:
        load(path, default_models_dir=Path("/m"))
    assert info.value.message == f"{path}: device.volume: unknown key"
    assert info.value.code == "config_invalid"


def test_the_broker_password_comes_from_a_file_and_a_bad_file_is_one_line(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "broker.password"
    secret.write_text("s3cret\n")
    hub = parse(
        {"device": {"tenant": "acme", "device": "pi"}, "hub": {"password_file": "broker.password"}},
        base_dir=tmp_path,
        default_models_dir=tmp_path,
    ).hub
    assert hub.password == "s3cret"
    assert "s3cret" not in repr(hub)
    for raw, message in [
        ({"password_file": "missing"}, "hub.password_file: .*missing: no such file"),
        (
            {"password_file": "broker.password", "password": "x"},
            "hub.password_file: give only one of password, password_file",
        ),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse(
                {"device": {"tenant": "acme", "device": "pi"}, "hub": raw},
                base_dir=tmp_path,
                default_models_dir=tmp_path,
            )

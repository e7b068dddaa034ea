"""Parsing the hub's TOML configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from konak.errors import ConfigError
from konak.hub.settings import load_settings, parse_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "konak/hub/hub.example.toml"


def test_the_example_configuration_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KONAK_HUB_MQTT_PASSWORD", "secret")
    monkeypatch.setenv("KONAK_HOME_MQTT_PASSWORD", "secret")

    settings = load_settings(EXAMPLE)

    assert settings.mqtt.password == "secret"
    assert "secret" not in repr(settings)
    acme = settings.tenants["acme"]
    assert [(s.name, s.transport) for s in acme.mcp_servers] == [
        ("home", "stdio"),
        ("web", "http"),
        ("knowledge", "http"),
    ]
    assert acme.bindings["HassGoodNight"].calls[1].arguments == {"name": "hall switch"}


def test_a_minimal_configuration_gets_defaults() -> None:
    settings = parse_settings({"hub": {"database_path": "/tmp/x.sqlite3"}})

    assert settings.arbitration_window_seconds == 1.0
    assert (settings.mqtt.max_turns_in_flight, settings.stop_grace_seconds) == (512, 20.0)
    assert settings.fleet.webhook_url is None
    assert settings.tenants == {}


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({}, "hub.database_path: required"),
        ({"hub": {"database_path": "x", "colour": 1}}, "hub.colour: unknown key"),
        ({"hub": {"database_path": "x", "http_port": "80"}}, "hub.http_port: must be an integer"),
        ({"hub": {"database_path": "x", "log_level": "LOUD"}}, "log_level must be one of"),
        ({"hub": {"database_path": "x"}, "mqtt": {"port": 70000}}, "not a TCP port"),
        ({"hub": {"database_path": "x"}, "mqtt": {"max_turns_in_flight": 0}}, "1 to 65535"),
        ({"hub": {"database_path": "x", "stop_grace_seconds": -1}}, "stop_grace_seconds must"),
        ({"hub": {"database_path": "x"}, "mqtt": {"password_env": "NO_SUCH_VAR_KONAK"}}, "not set"),
        ({"hub": {"database_path": "x"}, "fleet": {"webhook_url": "ftp://x"}}, "not an http URL"),
        ({"hub": {"database_path": "x"}, "arbitration": {"window_seconds": "1"}}, "a number"),
        ({"hub": {"database_path": "x"}, "surprise": {}}, "surprise: unknown key"),
        ({"hub": {"database_path": "x"}, "tenants": {"Bad Tenant": {}}}, "invalid tenant id"),
        (
            {"hub": {"database_path": "x"}, "tenants": {"a": {"mcp_servers": [{"name": "s"}]}}},
            "exactly one of 'command'",
        ),
        (
            {
                "hub": {"database_path": "x"},
                "tenants": {
                    "a": {"mcp_servers": [{"name": "s", "url": "http://h", "retries": -1}]}
                },
            },
            "retries must be >= 0",
        ),
        (
            {
                "hub": {"database_path": "x"},
                "tenants": {"a": {"bindings": {"X": {"tool": "t", "arguments": {"a": "{b.c}"}}}}},
            },
            "must be a plain slot name",
        ),
        (
            {
                "hub": {"database_path": "x"},
                "tenants": {"a": {"bindings": {"X": {"tool": "t", "server": "nope"}}}},
            },
            "unknown server 'nope'",
        ),
        (
            {"hub": {"database_path": "x"}, "tenants": {"a": {"fleet_token_sha256": "abc"}}},
            "64 lowercase hex digits",
        ),
    ],
)
def test_an_invalid_configuration_is_refused_with_its_reason(
    document: dict[str, object], reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(document)

    assert reason in caught.value.message


def test_a_file_that_is_not_toml_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text("[hub\n")

    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "absent.toml")

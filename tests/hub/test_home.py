"""konak-home's configuration file: every mistake is one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from konak.errors import ConfigError
from konak.hub.mcp_servers.home import Entity, _report, load_home_settings
from tests.conftest import konak, one_error_line


def _write(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "home.toml"
    config.write_text(text)
    return config


def test_an_unknown_entity_key_is_one_line_naming_the_file_and_the_key(tmp_path: Path) -> None:
    config = _write(tmp_path, '[[entities]]\nname = "kitchen light"\ncolour = "red"\n')

    line = one_error_line(konak("--config", str(config), module="konak.hub.mcp_servers.home"))

    assert line == f"konak-home: {config}: entities[0].colour: unknown key"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[mqtt]\nhots = "x"\n', "mqtt.hots: unknown key"),
        ('[mqqt]\nhost = "x"\n', "mqqt: unknown key"),
        ('[mqtt]\nport = "a lot"\n', "mqtt.port: must be an integer, not string"),
        (
            '[[entities]]\nname = "a"\n[[entities]]\nname = "b"\nkind = "lamp"\n',
            "entities[1].kind: must be 'light' or 'switch'",
        ),
        ('[[entities]]\nname = "a/b"\n', "entities[0]: entity name 'a/b' cannot be used"),
        ('[mqtt]\nbase_topic = "z/#"\n', "mqtt.base_topic: must be a plain topic prefix"),
    ],
)
def test_a_bad_key_or_value_names_the_file_the_section_and_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = _write(tmp_path, text)

    with pytest.raises(ConfigError) as refused:
        load_home_settings(config, environ={})

    assert refused.value.message.startswith(f"{config}: {expected}")
    assert "\n" not in refused.value.message


def test_a_valid_file_gives_the_settings_with_the_password_from_the_environment(
    tmp_path: Path,
) -> None:
    config = _write(
        tmp_path,
        '[mqtt]\nport = 1884\npassword_env = "HOME_PW"\nstate_timeout_seconds = 1.5\n'
        '[[entities]]\nname = "hall switch"\nkind = "switch"\narea = "hall"\n',
    )

    settings = load_home_settings(config, environ={"HOME_PW": "pw"})

    assert (settings.port, settings.password, settings.state_timeout_seconds) == (1884, "pw", 1.5)
    assert settings.entities == (Entity("hall switch", kind="switch", area="hall"),)


def test_a_command_is_reported_done_only_for_the_devices_that_confirmed_it() -> None:
    light, switch = Entity("kitchen light"), Entity("hall switch", kind="switch")

    assert _report([light], [], "Turned on", "turn on") == "Turned on the kitchen light."
    assert (
        _report([light], [light], "Turned on", "turn on")
        == "I asked the kitchen light to turn on, but it did not confirm."
    )
    assert (
        _report([light, switch], [switch], "Turned off", "turn off")
        == "Turned off 1 of 2 devices; no confirmation from the hall switch."
    )

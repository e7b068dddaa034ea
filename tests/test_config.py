"""load_toml: a config file becomes a settings model, or one line ``file: section.key: reason``."""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic.dataclasses import dataclass

from konak.config import SETTINGS, FilePath, Float, Int, between, load_toml, secrets
from konak.errors import ConfigError


@dataclass(frozen=True, slots=True, config=SETTINGS)
class Link:
    host: str = "127.0.0.1"
    port: Int = 1883
    password: str = field(default="", repr=False)
    timeout_seconds: Annotated[Float, between(0.5, 30)] = 2.0
    ca_file: FilePath | None = None

    _secrets = secrets("password")


@dataclass(frozen=True, slots=True, config=SETTINGS)
class Config:
    name: str
    link: Link = field(default_factory=Link)


def _refused(path: Path, text: str | bytes) -> str:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_toml(path, Config)
    assert refused.value.code == "config_invalid"
    assert "\n" not in refused.value.message
    return refused.value.message


def test_a_valid_file_gives_the_model_with_defaults_and_paths_relative_to_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.toml"
    path.write_text('name = "x"\n[link]\nport = 8883\ntimeout_seconds = 1\nca_file = "ca.pem"\n')

    config = load_toml(path, Config)

    assert config == Config("x", Link(port=8883, timeout_seconds=1.0, ca_file=tmp_path / "ca.pem"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('name = "x"\n[link]\nprot = 1\n', "link.prot: unknown key"),
        ('name = "x"\n[link]\nport = "1883"\n', "link.port: must be an integer, not string"),
        ('name = "x"\n[link]\nport = true\n', "link.port: must be an integer, not boolean"),
        ('name = "x"\nlink = 3\n', "link: must be a table, not integer"),
        (
            'name = "x"\n[link]\ntimeout_seconds = 60\n',
            "link.timeout_seconds: must be between 0.5 and 30, not 60.0",
        ),
        ("[link]\n", "name: required"),
    ],
)
def test_a_bad_key_or_value_is_one_line_naming_the_file_and_the_key(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / "app.toml"
    assert _refused(path, text) == f"{path}: {reason}"


def test_a_toml_syntax_error_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    assert _refused(path, "[link\n").startswith(f"{path}: not valid TOML: ")


def test_a_file_that_is_not_utf8_names_the_file_and_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    assert _refused(path, b'name = "caf\xe9"\n') == (
        f"{path}: not UTF-8 text (byte 0xe9 at offset 11); TOML files must be UTF-8"
    )


def test_a_missing_or_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"^{tmp_path / 'absent.toml'}: no such file$"):
        load_toml(tmp_path / "absent.toml", Config)
    with pytest.raises(ConfigError, match=f"^{tmp_path}: cannot read it: Is a directory$"):
        load_toml(tmp_path, Config)


def test_a_secret_comes_from_its_file_or_the_environment_and_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    monkeypatch.setenv("LINK_PW", "from-env")
    path = tmp_path / "app.toml"

    path.write_text(f'name = "x"\n[link]\npassword_file = "{tmp_path / "pw"}"\n')
    from_file = load_toml(path, Config).link
    path.write_text('name = "x"\n[link]\npassword_env = "LINK_PW"\n')
    from_env = load_toml(path, Config).link

    assert (from_file.password, from_env.password) == ("s3cret", "from-env")
    assert "s3cret" not in repr(from_file)


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        ({"password_file": "missing"}, "link.password_file: missing: no such file"),
        (
            {"password_file": "latin1"},
            "link.password_file: latin1: not UTF-8 text (byte 0xe9 at offset 3); "
            "secret files must be UTF-8",
        ),
        (
            {"password_env": "KONAK_NO_SUCH_VAR"},
            "link.password_env: environment variable 'KONAK_NO_SUCH_VAR' is not set",
        ),
        (
            {"password": "x", "password_env": "LINK_PW"},
            "link.password_env: give only one of password, password_env",
        ),
    ],
)
def test_a_bad_secret_is_one_line_naming_the_key_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, link: dict[str, Any], reason: str
) -> None:
    monkeypatch.chdir(tmp_path)  # secret files of these models are relative to the process
    monkeypatch.delenv("KONAK_NO_SUCH_VAR", raising=False)
    (tmp_path / "latin1").write_bytes(b"caf\xe9\n")
    lines = "".join(f'{key} = "{value}"\n' for key, value in link.items())
    path = tmp_path / "app.toml"

    message = _refused(path, f'name = "x"\n[link]\n{lines}')

    assert message.startswith(f"{path}: {reason}")

"""The [auth.smtp] table and the reset settings of hub.toml."""

from __future__ import annotations

from typing import Any

import pytest

from konak.hub.errors import ConfigError
from konak.hub.settings import parse_settings

SECRET = "s" * 40


def settings(auth: dict[str, Any]) -> Any:
    return parse_settings(
        {
            "hub": {"database_path": "/tmp/x.sqlite3"},
            "auth": {
                "active_kid": "k1",
                "keys": {"k1": {"secret_env": "KONAK_TEST_SECRET"}},
                **auth,
            },
        }
    )


def test_the_smtp_table_parses_with_its_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KONAK_TEST_SECRET", SECRET)
    monkeypatch.setenv("KONAK_SMTP_PASSWORD", "mail-secret")
    auth = settings(
        {
            "public_url": "https://hub.example.org",
            "reset_token_seconds": 900,
            "smtp": {
                "host": "mail.example.org",
                "port": 587,
                "from": "hub@example.org",
                "starttls": True,
                "username": "hub",
                "password_env": "KONAK_SMTP_PASSWORD",
            },
        }
    ).auth
    assert auth.smtp is not None
    assert (auth.smtp.host, auth.smtp.port, auth.smtp.sender) == (
        "mail.example.org",
        587,
        "hub@example.org",
    )
    assert auth.smtp.starttls
    assert auth.smtp.password == "mail-secret"
    assert "mail-secret" not in repr(auth.smtp)
    assert auth.reset_token_seconds == 900.0
    assert auth.public_url == "https://hub.example.org"


@pytest.mark.parametrize(
    ("auth", "reason"),
    [
        ({"smtp": "mail.example.org"}, "must be a table"),
        ({"smtp": {"port": 25}}, "auth.smtp.host: required"),
        ({"smtp": {"host": "m", "password": "inline"}}, "password_env"),
        ({"smtp": {"host": "m", "port": 70000}}, "not a TCP port"),
        ({"smtp": {"host": "m", "port": "25"}}, "auth.smtp.port: must be an integer"),
        ({"smtp": {"host": "m", "starttls": "yes"}}, "auth.smtp.starttls: must be true or false"),
        ({"smtp": {"host": "m", "from": "nobody"}}, "e-mail address"),
        ({"smtp": {"host": "m", "relay": "x"}}, "unknown key"),
        ({"smtp": {"host": "m", "password_env": "KONAK_UNSET_VAR"}}, "is not set"),
        ({"public_url": "ftp://x"}, "http(s) URL"),
        ({"reset_token_seconds": 0}, "must be positive"),
    ],
)
def test_a_bad_smtp_table_is_refused_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, auth: dict[str, Any], reason: str
) -> None:
    monkeypatch.setenv("KONAK_TEST_SECRET", SECRET)
    monkeypatch.delenv("KONAK_UNSET_VAR", raising=False)
    with pytest.raises(ConfigError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        settings(auth)

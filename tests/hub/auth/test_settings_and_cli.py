from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from konak.hub.database import connect
from konak.hub.errors import ConfigError
from konak.hub.settings import load_settings, parse_settings
from tests.conftest import KonakMain, one_error_line

SECRET = "x" * 40


def document(tmp_path: Path, **auth: Any) -> dict[str, Any]:
    return {
        "hub": {"database_path": str(tmp_path / "hub.sqlite3")},
        "auth": {"active_kid": "k1", "keys": {"k1": {"secret_env": "JWT"}}, **auth},
    }


def test_the_auth_table_parses_with_the_secret_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT", SECRET)
    settings = parse_settings(
        document(tmp_path, route_limits={"login": {"burst": 3, "per_second": 0.1}})
    )
    assert settings.auth.enabled
    assert settings.auth.keys[0].secret == SECRET
    assert SECRET not in repr(settings)
    assert settings.auth.route_limits["login"].burst == 3
    assert settings.auth.route_limits["password_reset"].burst == 5  # defaults kept by name
    assert not settings.provisioning.enabled


def test_the_lock_out_proxy_and_mail_settings_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT", SECRET)
    auth = parse_settings(
        document(
            tmp_path,
            trusted_proxies=["127.0.0.1", "fd00::/8"],
            forwarded_header="forwarded",
            slowdown_after_failures=20,
            slowdown_initial_seconds=1,
            slowdown_max_seconds=10,
            mail_limit={"burst": 2, "per_second": 0.001},
            invitation_token_seconds=3600,
        )
    ).auth
    assert auth.trusted_proxies == ("127.0.0.1", "fd00::/8")
    assert (auth.forwarded_header, auth.slowdown_after_failures) == ("forwarded", 20)
    assert (auth.slowdown_initial_seconds, auth.slowdown_max_seconds) == (1.0, 10.0)
    assert (auth.mail_limit.burst, auth.invitation_token_seconds) == (2, 3600.0)


@pytest.mark.parametrize(
    ("auth", "reason"),
    [
        ({"colour": 1}, "auth.colour: unknown key"),
        ({"access_token_seconds": "5m"}, "auth.access_token_seconds: must be a number"),
        ({"active_kid": "nope"}, "active_kid must name"),
        ({"keys": {"k1": {"secret": "inline"}}}, "secret_env or secret_file"),
        (
            {"keys": {"k1": {"algorithm": "RS256", "secret_env": "JWT"}}},
            "auth.keys.k1.algorithm: must be 'HS256' or 'EdDSA'",
        ),
        ({"keys": {"k1": {"algorithm": "EdDSA"}}}, "needs private_key_file"),
        ({"ip_limit": {"burst": 1}}, "auth.ip_limit.per_second: required"),
        ({"password_min_length": 4}, "password_min_length must be >= 8"),
        ({"keys": {"k1": {"secret_env": "UNSET_VARIABLE"}}}, "is not set"),
        ({"rate_limits": {"backend": "redis"}}, "must be a redis://"),
        (
            {"rate_limits": {"backend": "memcached"}},
            "auth.rate_limits.backend: must be 'memory' or 'redis'",
        ),
        ({"rate_limits": {"backend": "redis", "url": "http://x"}}, "must be a redis://"),
        ({"rate_limits": {"url": "redis://x", "password": "inline"}}, "password_env"),
        ({"rate_limits": {"colour": 1}}, "auth.rate_limits.colour: unknown key"),
        ({"rate_limits": "redis"}, "must be a table"),
        ({"trusted_proxies": "127.0.0.1"}, "auth.trusted_proxies: must be a list"),
        ({"trusted_proxies": ["proxy.local"]}, "is not an address"),
        ({"forwarded_header": "x-real-ip"}, "auth.forwarded_header: must be"),
        ({"slowdown_initial_seconds": 60}, "slowdown_initial_seconds <= slowdown_max"),
        ({"mail_limit": {"burst": 0, "per_second": 1}}, "burst>=1"),
        ({"invitation_token_seconds": 0}, "invitation_token_seconds must be positive"),
    ],
)
def test_a_bad_auth_table_is_refused_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auth: dict[str, Any], reason: str
) -> None:
    monkeypatch.setenv("JWT", SECRET)
    with pytest.raises(ConfigError) as info:
        parse_settings(document(tmp_path, **auth))
    assert reason in info.value.message


def test_the_rate_limit_backend_parses_with_the_redis_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT", SECRET)
    monkeypatch.setenv("REDIS_PW", "redis-secret")
    raw = {"backend": "redis", "url": "redis://127.0.0.1:6379/0", "password_env": "REDIS_PW"}

    backend = parse_settings(document(tmp_path, rate_limits=raw)).auth.limit_backend

    assert (backend.backend, backend.password, backend.key_prefix) == (
        "redis",
        "redis-secret",
        "konak:rl:",
    )
    assert "redis-secret" not in repr(backend)


def test_an_unreadable_pem_key_is_a_config_error_when_the_api_starts(tmp_path: Path) -> None:
    from aiohttp import web

    from konak.hub.api.routes import setup_api

    (tmp_path / "key.pem").write_text("not a key")
    data = {
        "hub": {"database_path": str(tmp_path / "hub.sqlite3")},
        "auth": {
            "active_kid": "k1",
            "keys": {"k1": {"algorithm": "EdDSA", "private_key_file": str(tmp_path / "key.pem")}},
        },
    }
    with pytest.raises(ConfigError, match="not a usable PEM key"):
        setup_api(web.Application(), parse_settings(data))


def test_the_provisioning_table_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROV", "pw")
    settings = parse_settings(
        {
            "hub": {"database_path": str(tmp_path / "db")},
            "provisioning": {"enabled": True, "password_env": "PROV", "broker_port": 8883},
        }
    )
    assert settings.provisioning.password == "pw"
    assert settings.provisioning.broker_port == 8883
    with pytest.raises(ConfigError, match="enabled"):
        parse_settings({"hub": {"database_path": "x"}, "provisioning": {"enabled": "yes"}})


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\ndatabase_path = "{tmp_path / "hub.sqlite3"}"\n'
        '[auth]\nactive_kid = "k1"\nargon2_time_cost = 1\nargon2_memory_kib = 64\n'
        '[auth.keys.k1]\nsecret_env = "JWT"\n'
        "[tenants.acme]\n"
    )
    return config


def test_add_user_creates_the_superadmin_and_a_tenant_admin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, konak_main: KonakMain
) -> None:
    monkeypatch.setenv("JWT", SECRET)
    monkeypatch.setenv("KONAK_NEW_PASSWORD", "violet-harbour-engine-42")
    config = write_config(tmp_path)
    add_user = ("hub", "add-user", "--config", str(config))
    root = konak_main(*add_user, "--email", "r@x.io", "--superadmin")
    admin = konak_main(*add_user, "--email", "a@x.io", "--tenant", "acme", "--role", "admin")
    assert (root.returncode, admin.returncode) == (0, 0)
    assert "violet" not in root.stdout + admin.stdout
    db = connect(load_settings(config).database_path)
    rows = db.execute(
        "SELECT u.email, u.superadmin, m.role FROM users u "
        "LEFT JOIN memberships m ON m.user_id = u.user_id ORDER BY u.email"
    ).fetchall()
    db.close()
    assert [tuple(r) for r in rows] == [("a@x.io", 0, "admin"), ("r@x.io", 1, None)]


@pytest.mark.parametrize(
    ("extra", "password", "reason"),
    [
        (["--superadmin"], "short", "weak_password"),
        (["--tenant", "nope"], "violet-harbour-engine-42", "not_found"),
        ([], "violet-harbour-engine-42", "usage"),
    ],
)
def test_add_user_refuses_bad_input_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    konak_main: KonakMain,
    extra: list[str],
    password: str,
    reason: str,
) -> None:
    monkeypatch.setenv("JWT", SECRET)
    monkeypatch.setenv("KONAK_NEW_PASSWORD", password)
    config = write_config(tmp_path)
    done = konak_main("hub", "add-user", "--config", str(config), "--email", "a@x.io", *extra)
    assert one_error_line(done).endswith(f"[{reason}]")

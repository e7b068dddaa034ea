"""``[knowledge]`` and the knowledge quotas in hub.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from konak.errors import ConfigError
from konak.hub.settings import load_settings, parse_settings

HUB = {"hub": {"database_path": "/tmp/x.sqlite3"}}


def test_knowledge_is_on_with_sqlite_beside_the_hub_database_by_default() -> None:
    knowledge = parse_settings(HUB).knowledge

    assert (knowledge.enabled, knowledge.backend, knowledge.directory) == (True, "sqlite", None)
    assert (knowledge.model, knowledge.chunk_chars, knowledge.chunk_overlap_chars) == (
        "all-minilm-l6-v2",
        800,
        100,
    )


def test_the_postgres_dsn_is_a_secret_from_the_environment_and_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KN_DSN", "postgresql://konak:hunter2@db/konak")

    settings = parse_settings(
        {**HUB, "knowledge": {"backend": "postgres", "postgres_dsn_env": "KN_DSN"}}
    )

    assert settings.knowledge.postgres_dsn == "postgresql://konak:hunter2@db/konak"
    assert "hunter2" not in repr(settings)


def test_a_relative_directory_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[hub]\ndatabase_path = "hub.db"\n[knowledge]\ndirectory = "kn"\n')

    assert load_settings(config).knowledge.directory == tmp_path / "kn"


@pytest.mark.parametrize(
    ("knowledge", "message"),
    [
        ({"backend": "redis"}, "knowledge.backend: must be one of sqlite, postgres, not 'redis'"),
        ({"backend": "postgres"}, 'knowledge: backend "postgres" needs postgres_dsn_env'),
        ({"postgres_dsn": "postgresql://x"}, "knowledge.postgres_dsn: give it as postgres_dsn_env"),
        ({"chunk_chars": 10}, "knowledge.chunk_chars must be >= 50"),
        ({"chunk_overlap_chars": 500}, "knowledge.chunk_overlap_chars must be between 0 and half"),
        ({"answer_threshold": 2.0}, "knowledge.answer_threshold must be between -1 and 1"),
        ({"model": "../x"}, "knowledge.model '../x' is not a model id"),
        ({"colour": 1}, "knowledge.colour: unknown key"),
        ({"chunk_chars": "800"}, "knowledge.chunk_chars: must be an integer, not string"),
    ],
)
def test_a_bad_knowledge_setting_is_one_line_naming_the_key(
    knowledge: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings({**HUB, "knowledge": knowledge})

    assert err.value.message.startswith(message)
    assert "\n" not in err.value.message


def test_knowledge_quotas_are_per_tenant_and_positive() -> None:
    quotas = parse_settings(
        {**HUB, "quotas": {"max_vectors": 1000, "tenants": {"acme": {"max_vector_bytes": 10}}}}
    ).quotas

    assert quotas.of("globex").max_vectors == 1000
    assert (quotas.of("acme").max_vectors, quotas.of("acme").max_vector_bytes) == (1000, 10)
    with pytest.raises(ConfigError, match="quotas: max_vectors must be >= 1"):
        parse_settings({**HUB, "quotas": {"max_vectors": 0}})

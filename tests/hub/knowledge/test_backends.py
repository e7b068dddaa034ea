"""What is particular to each backend: an unusable SQLite file, an unreachable PostgreSQL,
and where each keeps a tenant."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from konak.hub.knowledge.pgvector_sql import schema_name
from konak.hub.knowledge.service import KnowledgeService
from konak.hub.knowledge.settings import KnowledgeSettings
from konak.hub.knowledge.types import BackendUnavailable, DocumentIn, KnowledgeError
from konak.hub.quotas import TenantQuota

from .conftest import HashEmbedder


async def _open(settings: KnowledgeSettings) -> KnowledgeService:
    return await KnowledgeService.open(
        settings, quotas=lambda tenant: TenantQuota(), embedder=HashEmbedder()
    )


async def test_each_tenant_is_one_sqlite_file_named_after_it(tmp_path: Path) -> None:
    service = await _open(KnowledgeSettings(directory=tmp_path))
    try:
        await service.create_collection("acme", "notes")
        await service.upsert("acme", "notes", [DocumentIn("a", "alpha")])
        with pytest.raises(KnowledgeError, match="invalid tenant id"):
            await service.list_collections("../acme")
    finally:
        await service.close()

    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".sqlite3") == ["acme.sqlite3"]


@pytest.mark.parametrize(
    "content", [b"this is not a database" * 100, b"SQLite format 3\x00" + b"\xff" * 200]
)
async def test_a_corrupt_sqlite_file_is_refused_with_one_line(
    tmp_path: Path, content: bytes
) -> None:
    (tmp_path / "acme.sqlite3").write_bytes(content)
    service = await _open(KnowledgeSettings(directory=tmp_path))
    try:
        with pytest.raises(BackendUnavailable) as err:
            await service.list_collections("acme")
    finally:
        await service.close()

    assert "\n" not in err.value.message
    assert str(tmp_path / "acme.sqlite3") in err.value.message
    assert (tmp_path / "acme.sqlite3").read_bytes() == content  # untouched


async def test_another_programs_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    foreign = tmp_path / "acme.sqlite3"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)")
    db.close()
    before = foreign.read_bytes()
    service = await _open(KnowledgeSettings(directory=tmp_path))
    try:
        with pytest.raises(BackendUnavailable, match="not a Konak knowledge file") as err:
            await service.create_collection("acme", "notes")
    finally:
        await service.close()

    assert "\n" not in err.value.message
    assert foreign.read_bytes() == before


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_postgres_server_is_backend_unavailable() -> None:
    dsn = f"host=127.0.0.1 port={_free_port()} dbname=konak user=konak password=hunter2"
    service = await _open(KnowledgeSettings(backend="postgres", postgres_dsn=dsn))
    try:
        with pytest.raises(BackendUnavailable, match="unreachable") as err:
            await service.list_collections("acme")
    finally:
        await service.close()

    assert "hunter2" not in err.value.message


async def test_a_stopped_postgres_server_is_backend_unavailable_then_works_again(
    postgres_dsn: str,
) -> None:
    service = await _open(KnowledgeSettings(backend="postgres", postgres_dsn=postgres_dsn))
    try:
        await service.create_collection("acme", "notes")
        import psycopg

        # Every connection of the service ends, as when the server restarts.
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        assert [c.name for c in await service.list_collections("acme")] == ["notes"]
    finally:
        await service.close()


def test_long_tenant_ids_get_distinct_postgres_schemas_within_63_characters() -> None:
    a, b = "a" * 60 + "x", "a" * 60 + "y"

    assert schema_name("acme") == "kn_acme"
    assert len(schema_name(a)) <= 63
    assert schema_name(a) != schema_name(b)


async def test_tenants_live_in_their_own_postgres_schema(postgres_dsn: str) -> None:
    service = await _open(KnowledgeSettings(backend="postgres", postgres_dsn=postgres_dsn))
    try:
        for tenant in ("acme", "globex-2"):
            await service.create_collection(tenant, "notes")
    finally:
        await service.close()
    import psycopg

    with psycopg.connect(postgres_dsn) as conn:
        schemas = {
            row[0]
            for row in conn.execute(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'passages'"
            )
        }
    assert schemas == {"kn_acme", "kn_globex-2"}

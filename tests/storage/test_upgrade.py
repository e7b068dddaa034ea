"""Databases earlier releases created are opened by this one: every row kept (a column a
step adds is NULL in old rows), the schema version set, the schema the same as a new file's.

The files are rebuilt from ``releases/*.sql``: what each release's own code wrote on a new
file (212ef6d: on f737f0f's file), dumped with ``sqlite3 .dump`` (291f9f0 is the last
release before versions; 212ef6d is at version 1).
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from konak.daemon.outbox import EXPIRED, SCHEMA_VERSION, Outbox
from konak.hub import database
from konak.hub.mcp_registry import McpRegistry
from konak.hub.store import Store
from konak.hub.voice_config import Draft, VoiceConfigs
from konak.provisioning.claims import Claims
from konak.storage.sqlite import Schema, connect

RELEASES = Path(__file__).with_name("releases")
Rows = dict[str, list[tuple[Any, ...]]]


def restore(dump: str, path: Path) -> Path:
    """The database file as that release left it (in WAL mode, as it ran)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.executescript((RELEASES / dump).read_text())
        db.execute("PRAGMA journal_mode=WAL")
    return path


def rows(path: Path) -> Rows:
    """Every row of every table, in rowid order."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}


def assert_kept(before: Rows, after: Rows) -> None:
    """Each old row is still there, with NULL in the columns added since."""
    for table, old in before.items():
        new = after[table]
        assert [row[: len(o)] for row, o in zip(new, old, strict=True)] == old, table
        assert all(v is None for row, o in zip(new, old, strict=True) for v in row[len(o) :])


def shape(path: Path) -> dict[str, Any]:
    """The schema as SQLite sees it: columns of each table, indexes, triggers; the version."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        objects = db.execute("SELECT type, name FROM sqlite_master ORDER BY name").fetchall()
        columns = {
            name: db.execute(f"PRAGMA table_info({name})").fetchall()
            for kind, name in objects
            if kind == "table"
        }
        version = db.execute("PRAGMA user_version").fetchone()[0]
    return {"objects": objects, "columns": columns, "version": version}


def new_hub_database(path: Path) -> Path:
    database.connect(path).close()
    return path


@pytest.mark.parametrize(
    ("dump", "version"), [("hub-291f9f0.sql", 0), ("hub-f737f0f.sql", 0), ("hub-212ef6d.sql", 1)]
)
def test_a_hub_database_of_an_earlier_release_keeps_every_row_and_gets_the_current_version(
    tmp_path: Path, dump: str, version: int
) -> None:
    path = restore(dump, tmp_path / "hub.sqlite3")
    before = rows(path)
    assert shape(path)["version"] == version

    store = Store(path)  # the hub opens the store and the auth connection, in either order
    db = database.connect(path)

    assert_kept(before, rows(path))
    assert shape(path) == shape(new_hub_database(tmp_path / "new.sqlite3"))
    assert shape(path)["version"] == database.SCHEMA.version == 3
    # And the code reads what was there, and writes the columns added since.
    device = store.device("acme", "kitchen-pi")
    assert device is not None
    assert device.models == ["vosk-small-en"]
    unanswered = [t.turn_id for t in store.unanswered_turns("failed", "Sorry.")]
    assert unanswered[0] == "t-old-000002"  # old turns have no expiry: still answered
    claims = Claims(db)
    assert claims.devices("acme")[0]["device"] == "kitchen-pi"
    assert claims.redeem(claims.mint("acme", "u-1", 60, "hall-pi").token, "hall-pi").for_device
    server = McpRegistry(db).get("acme", "weather")
    assert server is not None
    assert server.headers == {"Authorization": "Bearer x"}
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit_log")
    store.close()
    db.close()


def test_a_hub_database_at_version_1_keeps_its_rows_and_gains_the_voice_config_table(
    tmp_path: Path,
) -> None:
    path = restore("hub-f737f0f.sql", tmp_path / "hub.sqlite3")
    v1 = Schema("the hub database", database.STEPS[:1], database.StoreError)
    connect(path, v1).close()  # as the release with schema version 1 left it
    before = rows(path)
    assert shape(path)["version"] == 1

    db = database.connect(path)

    assert_kept(before, rows(path))
    assert shape(path) == shape(new_hub_database(tmp_path / "new.sqlite3"))
    configs = VoiceConfigs(db)
    assert configs.latest("acme").revision == 0
    assert configs.save("acme", 0, Draft(), "ops@acme.test").revision == 1
    db.close()


def test_a_hub_database_of_a_hub_without_auth_gains_the_auth_tables(tmp_path: Path) -> None:
    path = restore("hub-store-only-291f9f0.sql", tmp_path / "hub.sqlite3")
    before = rows(path)

    database.connect(path).close()

    assert_kept(before, rows(path))
    assert shape(path) == shape(new_hub_database(tmp_path / "new.sqlite3"))


@pytest.mark.parametrize("dump", ["queue-291f9f0.sql", "queue-f737f0f.sql"])
def test_an_intent_queue_of_an_earlier_release_keeps_its_intents_and_dead_letters(
    tmp_path: Path, dump: str
) -> None:
    path = restore(dump, tmp_path / "queue.sqlite3")
    before = rows(path)

    box = Outbox(path)

    assert_kept(before, rows(path))
    head = box.head()
    assert head is not None
    assert (head.turn_id, head.expires_at) == ("t-queued-01", 4e9)
    assert len(box) == 2
    assert [(d.turn_id, d.reason) for d in box.dead_letters()] == [("t-dead-0001", EXPIRED)]
    box.close()
    fresh = tmp_path / "new.sqlite3"
    Outbox(fresh).close()
    assert shape(path) == shape(fresh)
    assert shape(path)["version"] == SCHEMA_VERSION == 2

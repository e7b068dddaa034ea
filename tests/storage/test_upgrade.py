"""Databases the previous release (commit 291f9f0) created are opened by this one: every
row kept, the schema version set, the schema the same as a new file's."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from konak.daemon.outbox import EXPIRED, Outbox
from konak.hub import database
from konak.hub.mcp_registry import McpRegistry
from konak.hub.store import Store
from konak.provisioning.claims import Claims

from . import previous_release

Rows = dict[str, list[tuple[Any, ...]]]


def rows(path: Path) -> Rows:
    """Every row of every table, in rowid order."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()
            for t in tables
            if t != "sqlite_sequence"
        }


def shape(path: Path) -> dict[str, Any]:
    """The schema as SQLite sees it: columns of each table, indexes, triggers; and version."""
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
    "claims",
    [previous_release.CLAIMS, previous_release.CLAIMS_BEFORE_FOR_DEVICE],
    ids=["291f9f0", "before-device-bound-tokens"],
)
def test_a_hub_database_of_the_previous_release_keeps_every_row_and_gets_version_1(
    tmp_path: Path, claims: str
) -> None:
    path = tmp_path / "hub.sqlite3"
    previous_release.hub_database(path, claims=claims)
    before = rows(path)

    store = Store(path)  # the hub opens the store and the auth connection, in either order
    db = database.connect(path)

    after = rows(path)
    if claims is previous_release.CLAIMS_BEFORE_FOR_DEVICE:  # the column added, NULL
        after["claim_tokens"] = [r[:-1] for r in after["claim_tokens"]]
    assert after == before
    assert shape(path) == shape(new_hub_database(tmp_path / "new.sqlite3"))
    assert shape(path)["version"] == database.SCHEMA.version == 1
    # And the code reads what was there.
    device = store.device("acme", "kitchen-pi")
    assert device is not None
    assert device.models == ["vosk-small-en"]
    assert [t.turn_id for t in store.unanswered_turns("failed", "Sorry.")] == ["t-old-000002"]
    assert Claims(db).devices("acme")[0]["device"] == "kitchen-pi"
    assert Claims(db).redeem(Claims(db).mint("acme", "u-1", 60, "hall-pi").token, "hall-pi")
    server = McpRegistry(db).get("acme", "weather")
    assert server is not None
    assert server.headers == {"Authorization": "Bearer x"}
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit_log")
    store.close()
    db.close()


def test_a_hub_database_of_a_hub_without_auth_gains_the_auth_tables(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    previous_release.hub_database(path, auth=False)
    before = rows(path)

    database.connect(path).close()

    after = rows(path)
    assert {t: r for t, r in after.items() if t in before} == before
    assert shape(path) == shape(new_hub_database(tmp_path / "new.sqlite3"))


def test_an_intent_queue_of_the_previous_release_keeps_its_intents_and_dead_letters(
    tmp_path: Path,
) -> None:
    path = tmp_path / "queue.sqlite3"
    previous_release.outbox(path)
    before = rows(path)

    box = Outbox(path)

    assert rows(path) == before
    head = box.head()
    assert head is not None
    assert (head.turn_id, head.expires_at) == ("t-queued-01", 4e9)
    assert len(box) == 2
    assert [(d.turn_id, d.reason) for d in box.dead_letters()] == [("t-dead-0001", EXPIRED)]
    box.close()
    fresh = tmp_path / "new.sqlite3"
    Outbox(fresh).close()
    assert shape(path)["version"] == 2
    assert shape(path)["columns"] == shape(fresh)["columns"]

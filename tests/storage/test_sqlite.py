"""The one SQLite opener: pragmas, ordered migration steps in transactions, and files it
refuses (newer than the code, not SQLite, truncated) without writing to them."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from konak.errors import KonakError
from konak.storage.sqlite import Schema, Step, connect, statements, user_version


class BoomError(KonakError):
    code = "boom"


def schema(*steps: Step) -> Schema:
    return Schema("the test database", steps, BoomError)


V1 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);"
V2 = "ALTER TABLE notes ADD COLUMN at REAL; CREATE INDEX notes_at ON notes (at);"


def test_a_new_file_gets_every_step_the_pragmas_and_the_last_version(tmp_path: Path) -> None:
    db = connect(tmp_path / "sub" / "x.sqlite3", schema(V1, V2), synchronous="FULL")

    assert user_version(db) == 2
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    db.execute("INSERT INTO notes (body, at) VALUES ('hi', 1.0)")
    db.close()


def test_an_older_file_gets_only_the_missing_steps_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    old = connect(path, schema(V1))
    old.execute("INSERT INTO notes (body) VALUES ('kept')")
    old.close()
    ran: list[int] = []

    def v3(db: sqlite3.Connection) -> None:
        ran.append(user_version(db))
        db.execute("UPDATE notes SET at = 7.0")

    db = connect(path, schema(V1, V2, v3))

    assert ran == [2]
    assert db.execute("SELECT body, at FROM notes").fetchall() == [("kept", 7.0)]
    db.close()
    connect(path, schema(V1, V2, v3)).close()  # current: nothing runs again
    assert ran == [2]


def test_a_failing_step_leaves_the_file_at_the_version_before_it(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    connect(path, schema(V1)).close()

    with pytest.raises(BoomError, match="no such table: nowhere"):
        connect(path, schema(V1, "CREATE TABLE half (x); INSERT INTO nowhere VALUES (1);"))

    with contextlib.closing(sqlite3.connect(path)) as db:
        assert user_version(db) == 1
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchall() == []


def test_a_file_newer_than_the_code_is_refused_with_one_line_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA user_version = 5")
    before = path.read_bytes()

    with pytest.raises(BoomError) as info:
        connect(path, schema(V1, V2))

    assert info.value.message == (
        f"the test database {path} has schema version 5, newer than this release's 2: "
        "run the release that wrote it, or restore a backup made by this one"
    )
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.sqlite3"]


def test_a_file_that_is_not_sqlite_is_refused_with_what_to_do_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.sqlite3"
    path.write_bytes(b"these are not the bytes you are looking for\n" * 100)

    with pytest.raises(BoomError) as info:
        connect(path, schema(V1))

    assert info.value.message == (
        f"cannot open the test database {path}: file is not a database (not a readable "
        "SQLite database); restore it from a backup, or move it aside to start with an "
        "empty one"
    )
    assert path.read_bytes() == b"these are not the bytes you are looking for\n" * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.sqlite3"]


def test_a_truncated_file_is_refused_as_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    db = connect(path, schema(V1))
    db.executemany("INSERT INTO notes (body) VALUES (?)", [("x" * 500,)] * 200)
    db.close()
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)

    with pytest.raises(BoomError, match=r"malformed \(not a readable SQLite database\)"):
        connect(path, schema(V1))


def test_a_script_splits_into_statements_keeping_trigger_bodies_whole() -> None:
    script = """
    CREATE TABLE a (x);
    CREATE TRIGGER a_no_delete BEFORE DELETE ON a
        BEGIN SELECT RAISE(ABORT, 'no; never'); END;
    CREATE INDEX a_x ON a (x);
    """

    found = list(statements(script))

    assert len(found) == 3
    assert found[1].startswith("CREATE TRIGGER")
    assert found[1].endswith("END;")

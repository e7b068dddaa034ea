"""One way to open a SQLite file and bring its schema to this release's version.

Every Konak database (the hub's, the daemon's intent queue) is opened by :func:`connect`:
WAL, a busy timeout, foreign keys on, autocommit with explicit ``BEGIN IMMEDIATE``
transactions (:func:`transaction`), usable from several threads (each store serialises its
own use). Its schema is a :class:`Schema`: an ordered list of steps, ``steps[n]`` taking
the file from ``PRAGMA user_version`` n to n + 1, each applied in its own transaction.
A file newer than the code, or one that is not a readable SQLite database, is refused
with one line naming the file and what to do, before anything is written to it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Final, Literal

from konak.errors import KonakError

BUSY_TIMEOUT_SECONDS: Final = 5.0  # what another connection's write may keep us waiting
# A step is a DDL script (run statement by statement: executescript would commit the
# step's transaction) or a function for what DDL cannot say (e.g. adopt older files).
Step = str | Callable[[sqlite3.Connection], None]
Synchronous = Literal["NORMAL", "FULL"]
_UNREADABLE: Final = (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT)


@dataclass(frozen=True, slots=True)
class Schema:
    """The versioned schema of one database file, and how its errors are reported."""

    label: str  # "the hub database", for messages
    steps: tuple[Step, ...]
    error: type[KonakError]  # what a failure to open raises (keeps each store's code)
    # Non-zero: written into new files (PRAGMA application_id); a file with another id, or
    # with tables but no id, is another program's and is refused before anything is written.
    application_id: int = 0

    @property
    def version(self) -> int:
        """The version this release writes."""
        return len(self.steps)


def connect(
    path: Path,
    schema: Schema,
    *,
    synchronous: Synchronous = "NORMAL",
    module: ModuleType = sqlite3,
    load: Callable[[sqlite3.Connection], None] | None = None,
) -> sqlite3.Connection:
    """Open ``path`` (creating it and its folder) and migrate it to ``schema.version``.

    ``module`` is the sqlite3-compatible binding (``sqlean`` where extensions are needed:
    this Python's sqlite3 cannot load them); ``load`` loads extensions into the connection.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # timeout= is SQLite's busy_timeout; autocommit: transactions are explicit.
        db: sqlite3.Connection = module.connect(
            path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error, module.Error) as exc:
        raise schema.error(f"cannot open {schema.label} {path}: {exc}") from exc
    try:
        if load is not None:
            db.enable_load_extension(True)
            load(db)
            db.enable_load_extension(False)
        # Read first: a file that is not SQLite, or is truncated, fails here, unwritten.
        _check_version(db, path, schema)
        _check_owner(db, path, schema)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db, path, schema)
    except (sqlite3.Error, module.Error) as exc:
        db.close()
        raise schema.error(_explain(schema, path, exc)) from exc
    except KonakError:
        db.close()
        raise
    return db


def _explain(schema: Schema, path: Path, exc: sqlite3.Error) -> str:
    if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _UNREADABLE:  # extended codes too
        return (
            f"cannot open {schema.label} {path}: {exc} (not a readable SQLite database); "
            "restore it from a backup, or move it aside to start with an empty one"
        )
    return f"cannot open {schema.label} {path}: {exc}"


def user_version(db: sqlite3.Connection) -> int:
    """The file's schema version (0: new, or from before versions)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _check_version(db: sqlite3.Connection, path: Path, schema: Schema) -> int:
    version = user_version(db)
    if version > schema.version:
        raise schema.error(
            f"{schema.label} {path} has schema version {version}, newer than this "
            f"release's {schema.version}: run the release that wrote it, or restore a "
            "backup made by this one"
        )
    return version


def _check_owner(db: sqlite3.Connection, path: Path, schema: Schema) -> None:
    if not schema.application_id:
        return
    found = int(db.execute("PRAGMA application_id").fetchone()[0])
    if found == schema.application_id:
        return
    if found == 0 and not db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        return  # a new, empty file
    raise schema.error(
        f"{path} is not {schema.label} (another program's SQLite file): move it aside, or "
        "configure another path"
    )


def migrate(db: sqlite3.Connection, path: Path, schema: Schema) -> None:
    """Apply the missing steps, each in a transaction that re-reads the version (another
    connection may be migrating the same file)."""
    if user_version(db) == schema.version:
        return  # the usual case: no write lock taken (another process may hold it)
    while True:
        with transaction(db):
            version = _check_version(db, path, schema)
            if version == schema.version:
                return
            step = schema.steps[version]
            if version == 0 and schema.application_id:
                db.execute(f"PRAGMA application_id = {int(schema.application_id)}")
            if isinstance(step, str):
                for statement in statements(step):
                    db.execute(statement)
            else:
                step(db)
            db.execute(f"PRAGMA user_version = {version + 1}")


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (``BEGIN IMMEDIATE``: the write lock is taken at once)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back already (e.g. a full disk)
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def statements(script: str) -> Iterator[str]:
    """The complete SQL statements of ``script`` (a trigger's body stays whole)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n\t;"):
                yield pending.strip()
            pending = ""
    if pending.strip(" \n\t;"):
        raise ValueError(f"incomplete SQL statement: {pending.strip()[:60]!r}")

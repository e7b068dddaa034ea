"""The SQL of the sqlite-vec backend: the schema of a tenant's file, the filter compiled
to lookups in its metadata index, and the small queries both reading and writing use."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, Final

import numpy as np
import sqlite_vec  # type: ignore[import-untyped]

from konak.hub.knowledge.common import not_found
from konak.hub.knowledge.filters import RANGES, Filter, kind
from konak.hub.knowledge.types import BackendUnavailable, Passage, Usage
from konak.storage import sqlite as storage

APPLICATION_ID: Final = 0x4B4E4B56  # "KNKV": refuses another program's SQLite file

_TABLES: Final = """
CREATE TABLE collections (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    dim INTEGER NOT NULL,
    model TEXT NOT NULL,
    passages INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE passages (
    pid INTEGER PRIMARY KEY,
    collection INTEGER NOT NULL,
    id TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    vector BLOB NOT NULL,
    bytes INTEGER NOT NULL,
    UNIQUE (collection, id)
);
CREATE INDEX passages_doc ON passages (collection, doc_id, seq);
-- A filter's index: kind is b(ool), n(umber), s(tring) or z (null, value 0); a list-valued
-- field has a row per element.
CREATE TABLE meta (
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    value NOT NULL,
    pid INTEGER NOT NULL,
    PRIMARY KEY (key, kind, value, pid)
) WITHOUT ROWID;
CREATE INDEX meta_pid ON meta (pid);
"""


SCHEMA: Final = storage.Schema(
    "a Konak knowledge file", (_TABLES,), BackendUnavailable, application_id=APPLICATION_ID
)


def load(db: sqlite3.Connection) -> None:
    """Load sqlite-vec into a connection."""
    sqlite_vec.load(db)


def meta_rows(pid: int, metadata: dict[str, Any]) -> Iterator[tuple[str, str, Any, int]]:
    for key, raw in metadata.items():
        for value in raw if isinstance(raw, list) else [raw]:
            yield key, kind(value), 0 if value is None else value, pid


_SIGNS: Final = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def compile_filter(where: Filter) -> tuple[str, list[Any], bool]:
    """The filter as SQL over ``passages.pid``, its parameters, and whether it names the
    candidates (the intersection of the equality, ``$in`` and range sets, read from the
    metadata index) rather than only excluding some (``$ne``)."""
    sets: list[tuple[str, list[Any]]] = []  # each: the pids one condition admits
    ranges: dict[str, tuple[set[str], list[str], list[Any]]] = {}
    excluded: list[tuple[str, list[Any]]] = []
    for cond in where.conditions:
        if cond.op in RANGES:
            # A field's range bounds hold for one value: one index range, "n >= 10 AND n < 30".
            value = cond.values[0]
            kinds, bounds, limits = ranges.setdefault(cond.field, (set(), [], []))
            kinds.add(kind(value))
            bounds.append(f"value {_SIGNS[cond.op]} ?")
            limits.append(value)
            continue
        tests = " OR ".join(["(kind = ? AND value = ?)"] * len(cond.values))
        args: list[Any] = [cond.field]
        for value in cond.values:
            args.extend((kind(value), 0 if value is None else value))
        query = f"SELECT pid FROM meta WHERE key = ? AND ({tests})"  # noqa: S608
        (excluded if cond.op == "$ne" else sets).append((query, args))
    for field, (kinds, bounds, limits) in ranges.items():
        # bounds of two kinds (a number and a string) hold for no one value
        test = " AND ".join(bounds) if len(kinds) == 1 else "0"
        query = f"SELECT pid FROM meta WHERE key = ? AND kind = ? AND {test}"  # noqa: S608
        sets.append((query, [field, min(kinds), *(limits if len(kinds) == 1 else [])]))
    parts: list[str] = []
    params: list[Any] = []
    if sets:
        parts.append(f"pid IN ({' INTERSECT '.join(q for q, _ in sets)})")
        params.extend(a for _, args in sets for a in args)
    for query, args in excluded:
        parts.append(f"pid NOT IN ({query})")
        params.extend(args)
    return " AND ".join(parts), params, bool(sets)


def usage_of(db: sqlite3.Connection) -> Usage:
    vectors, size = db.execute(
        "SELECT coalesce(sum(passages), 0), coalesce(sum(bytes), 0) FROM collections"
    ).fetchone()
    return Usage(int(vectors), int(size))


def count_documents(db: sqlite3.Connection, cid: int) -> int:
    return int(
        db.execute(
            "SELECT count(*) FROM (SELECT DISTINCT doc_id FROM passages WHERE collection = ?)",
            (cid,),
        ).fetchone()[0]
    )


def collection_of(db: sqlite3.Connection, name: str) -> tuple[int, int]:
    row = db.execute("SELECT id, dim FROM collections WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise not_found(name)
    return int(row[0]), int(row[1])


def passage_of(row: Sequence[Any]) -> Passage:
    pid, doc_id, text, meta, blob = row
    return Passage(pid, doc_id, text, json.loads(meta), np.frombuffer(blob, dtype=np.float32))

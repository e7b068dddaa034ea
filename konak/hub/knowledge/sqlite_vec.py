"""The embedded backend: sqlite-vec, one SQLite file per tenant (``<directory>/<tenant>.sqlite3``).

Another tenant's rows are in another file, so no query can reach them. Passages are a plain
table (vector as a float32 blob); metadata is also kept as (key, type, value, passage) rows
with an index, so a filter is an index lookup giving the candidate passages, and only those
are ranked with ``vec_distance_cosine`` (exact search). docs/knowledge.md has the
measurements behind this design.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import sqlean  # type: ignore[import-untyped]
import sqlite_vec  # type: ignore[import-untyped]

from konak.hub.knowledge.common import check_quota, metadata_json, not_found, select_collections
from konak.hub.knowledge.filters import Filter, kind
from konak.hub.knowledge.types import (
    BackendUnavailable,
    CollectionExists,
    CollectionInfo,
    Hit,
    KnowledgeError,
    Limits,
    Passage,
    Usage,
    passage_bytes,
)
from konak.protocol.topics import is_identifier
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


def _load(db: sqlite3.Connection) -> None:
    sqlite_vec.load(db)


def _meta_rows(pid: int, metadata: dict[str, Any]) -> Iterator[tuple[str, str, Any, int]]:
    for key, raw in metadata.items():
        for value in raw if isinstance(raw, list) else [raw]:
            yield key, kind(value), 0 if value is None else value, pid


def compile_filter(where: Filter) -> tuple[str, list[Any]]:
    """The filter as SQL over ``passages`` (its ``pid``) and its parameters."""
    parts: list[str] = []
    params: list[Any] = []
    for cond in where.conditions:
        if cond.op in ("$eq", "$ne", "$in"):
            tests = " OR ".join(["(kind = ? AND value = ?)"] * len(cond.values))
            negate = "NOT " if cond.op == "$ne" else ""
            parts.append(
                f"pid {negate}IN (SELECT pid FROM meta WHERE key = ? AND ({tests}))"  # noqa: S608
            )
            params.append(cond.field)
            for value in cond.values:
                params.extend((kind(value), 0 if value is None else value))
        else:
            sign = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[cond.op]
            value = cond.values[0]
            parts.append(
                f"pid IN (SELECT pid FROM meta WHERE key = ? AND kind = ? AND value {sign} ?)"  # noqa: S608
            )
            params.extend((cond.field, kind(value), value))
    return " AND ".join(parts), params


class _Tenant:
    """One tenant's file: a reading connection and a writing one (WAL: readers never see a
    write before it commits), each used by one thread at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = self._open()
        self.reader = self._open()
        self.read_lock = threading.Lock()
        self.write_lock = threading.Lock()  # held for a whole transaction (any thread ends it)

    def _open(self) -> sqlite3.Connection:
        return storage.connect(self.path, SCHEMA, module=sqlean, load=_load)

    def close(self) -> None:
        self.writer.close()
        self.reader.close()


def _info(row: Sequence[Any], documents: int) -> CollectionInfo:
    name, description, dim, model, passages, size, created, updated = row
    return CollectionInfo(
        name, description, dim, model, documents, passages, size, created, updated
    )


_INFO: Final = (
    "SELECT id, name, description, dim, model, passages, bytes, created_at, updated_at "
    "FROM collections"
)


class SqliteVecBackend:
    """sqlite-vec files under ``directory``, one per tenant, opened on first use."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._tenants: dict[str, _Tenant] = {}
        self._lock = threading.Lock()

    def _tenant(self, tenant: str, *, create: bool) -> _Tenant | None:
        if not is_identifier(tenant):
            raise KnowledgeError(f"invalid tenant id {tenant[:70]!r}")
        with self._lock:
            found = self._tenants.get(tenant)
            if found is not None:
                return found
            path = self.directory / f"{tenant}.sqlite3"
            if not create and not path.exists():
                return None
            self._tenants[tenant] = opened = _Tenant(path)
            return opened

    def _read(self, tenant: str) -> _Reading | None:
        t = self._tenant(tenant, create=False)
        return None if t is None else _Reading(t)

    # ------------------------------------------------------------------ collections
    def create_collection(
        self, tenant: str, name: str, description: str, dim: int, model: str
    ) -> CollectionInfo:
        t = self._tenant(tenant, create=True)
        assert t is not None
        now = time.time()
        with t.write_lock, storage.transaction(t.writer):
            try:
                t.writer.execute(
                    "INSERT INTO collections (name, description, dim, model, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (name, description, dim, model, now, now),
                )
            except sqlean.IntegrityError as exc:
                raise CollectionExists(f"collection {name!r} exists") from exc
        return CollectionInfo(name, description, dim, model, 0, 0, 0, now, now)

    def list_collections(self, tenant: str) -> list[CollectionInfo]:
        reading = self._read(tenant)
        if reading is None:
            return []
        with reading as db:
            rows = db.execute(f"{_INFO} ORDER BY name").fetchall()
            return [_info(row[1:], _documents(db, row[0])) for row in rows]

    def get_collection(self, tenant: str, name: str) -> CollectionInfo:
        reading = self._read(tenant)
        if reading is None:
            raise not_found(name)
        with reading as db:
            row = db.execute(f"{_INFO} WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise not_found(name)
            return _info(row[1:], _documents(db, row[0]))

    def delete_collection(self, tenant: str, name: str) -> None:
        t = self._tenant(tenant, create=False)
        if t is None:
            raise not_found(name)
        with t.write_lock, storage.transaction(t.writer):
            cid, _ = _collection(t.writer, name)
            t.writer.execute(
                "DELETE FROM meta WHERE pid IN (SELECT pid FROM passages WHERE collection = ?)",
                (cid,),
            )
            t.writer.execute("DELETE FROM passages WHERE collection = ?", (cid,))
            t.writer.execute("DELETE FROM collections WHERE id = ?", (cid,))

    def begin(self, tenant: str, collection: str) -> SqliteWriter:
        t = self._tenant(tenant, create=False)
        if t is None:
            raise not_found(collection)
        return SqliteWriter(t, collection)

    # ------------------------------------------------------------------ reading
    def get_document(self, tenant: str, collection: str, doc_id: str) -> list[Passage]:
        reading = self._read(tenant)
        if reading is None:
            raise not_found(collection)
        with reading as db:
            cid, _ = _collection(db, collection)
            rows = db.execute(
                "SELECT id, doc_id, text, metadata, vector FROM passages "
                "WHERE collection = ? AND doc_id = ? ORDER BY seq",
                (cid, doc_id),
            ).fetchall()
        return [_passage(row) for row in rows]

    def search(
        self,
        tenant: str,
        collections: Sequence[str] | None,
        vector: np.ndarray,
        k: int,
        where: Filter | None,
    ) -> list[Hit]:
        reading = self._read(tenant)
        if reading is None:
            if collections:
                raise not_found(collections[0])
            return []
        with reading as db:
            rows = db.execute("SELECT id, name, dim FROM collections").fetchall()
            names = select_collections(rows, collections, len(vector))
            if not names:
                return []
            marks = ",".join("?" * len(names))
            sql = f"collection IN ({marks})"
            params: list[Any] = [vector.astype(np.float32).tobytes(), *names]
            if where is not None:
                clause, extra = compile_filter(where)
                sql += f" AND {clause}"
                params.extend(extra)
            rows = db.execute(
                "SELECT t.collection, p.id, p.doc_id, p.text, p.metadata, t.distance FROM ("  # noqa: S608
                "SELECT pid, collection, vec_distance_cosine(vector, ?) AS distance "
                f"FROM passages WHERE {sql} ORDER BY distance LIMIT ?"
                ") AS t JOIN passages AS p ON p.pid = t.pid ORDER BY t.distance, p.pid",
                (*params, k),
            ).fetchall()
        return [
            Hit(names[cid], pid, doc, text, json.loads(meta), 1.0 - float(distance))
            for cid, pid, doc, text, meta, distance in rows
        ]

    def export(
        self, tenant: str, collection: str, after: int, batch: int
    ) -> tuple[list[Passage], int]:
        reading = self._read(tenant)
        if reading is None:
            raise not_found(collection)
        with reading as db:
            cid, _ = _collection(db, collection)
            rows = db.execute(
                "SELECT id, doc_id, text, metadata, vector, pid FROM passages "
                "WHERE collection = ? AND pid > ? ORDER BY pid LIMIT ?",
                (cid, after, batch),
            ).fetchall()
        return [_passage(row[:5]) for row in rows], (rows[-1][5] if rows else after)

    def usage(self, tenant: str) -> Usage:
        reading = self._read(tenant)
        if reading is None:
            return Usage(0, 0)
        with reading as db:
            return _usage(db)

    def close(self) -> None:
        with self._lock:
            for t in self._tenants.values():
                t.close()
            self._tenants.clear()


class _Reading:
    """The tenant's reading connection, held for one read; SQLite errors become
    BackendUnavailable."""

    def __init__(self, tenant: _Tenant) -> None:
        self._tenant = tenant

    def __enter__(self) -> sqlite3.Connection:
        self._tenant.read_lock.acquire()
        return self._tenant.reader

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        self._tenant.read_lock.release()
        if isinstance(exc, sqlean.Error):
            raise BackendUnavailable(f"{self._tenant.path}: {exc}") from exc


class SqliteWriter:
    """One write transaction on one collection of a tenant's file (the file's write lock is
    held until commit or rollback)."""

    def __init__(self, tenant: _Tenant, collection: str) -> None:
        self._tenant = tenant
        self._db = tenant.writer
        tenant.write_lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self.collection_id, self.dim = _collection(self._db, collection)
        except BaseException:
            self._end("ROLLBACK")
            raise
        self._changed = False

    def upsert(self, passages: Sequence[Passage], doc_ids: Sequence[str], limits: Limits) -> int:
        db, cid = self._db, self.collection_id
        old: list[tuple[int, int]] = []
        for doc_id in doc_ids:
            old.extend(
                db.execute(
                    "SELECT pid, bytes FROM passages WHERE collection = ? AND doc_id = ?",
                    (cid, doc_id),
                ).fetchall()
            )
        rows = []
        added = 0
        for seq, p in enumerate(passages):
            meta = metadata_json(p.metadata)
            size = passage_bytes(p, meta)
            added += size
            rows.append((cid, p.id, p.doc_id, seq, p.text, meta, p.vector.tobytes(), size))
        usage = _usage(db)
        check_quota(limits, usage, len(passages) - len(old), added - sum(b for _, b in old))
        if old:
            pids = [(pid,) for pid, _ in old]
            db.executemany("DELETE FROM meta WHERE pid = ?", pids)
            db.executemany("DELETE FROM passages WHERE pid = ?", pids)
        meta_rows: list[tuple[str, str, Any, int]] = []
        for row, p in zip(rows, passages, strict=True):
            cur = db.execute(
                "INSERT INTO passages (collection, id, doc_id, seq, text, metadata, vector, "
                "bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            assert cur.lastrowid is not None
            meta_rows.extend(_meta_rows(cur.lastrowid, dict(p.metadata)))
        db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?, ?, ?)", meta_rows)
        self._count(len(passages) - len(old), added - sum(b for _, b in old))
        return len(passages)

    def delete(self, doc_ids: Sequence[str]) -> int:
        db, cid = self._db, self.collection_id
        old: list[tuple[int, int]] = []
        for doc_id in doc_ids:
            old.extend(
                db.execute(
                    "SELECT pid, bytes FROM passages WHERE collection = ? AND doc_id = ?",
                    (cid, doc_id),
                ).fetchall()
            )
        pids = [(pid,) for pid, _ in old]
        db.executemany("DELETE FROM meta WHERE pid = ?", pids)
        db.executemany("DELETE FROM passages WHERE pid = ?", pids)
        self._count(-len(old), -sum(b for _, b in old))
        return len(old)

    def _count(self, passages: int, size: int) -> None:
        self._changed = True
        self._db.execute(
            "UPDATE collections SET passages = passages + ?, bytes = bytes + ?, updated_at = ? "
            "WHERE id = ?",
            (passages, size, time.time(), self.collection_id),
        )

    def commit(self) -> None:
        self._end("COMMIT")

    def rollback(self) -> None:
        self._end("ROLLBACK")

    def _end(self, statement: str) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute(statement)
        finally:
            self._tenant.write_lock.release()


def _usage(db: sqlite3.Connection) -> Usage:
    vectors, size = db.execute(
        "SELECT coalesce(sum(passages), 0), coalesce(sum(bytes), 0) FROM collections"
    ).fetchone()
    return Usage(int(vectors), int(size))


def _documents(db: sqlite3.Connection, cid: int) -> int:
    return int(
        db.execute(
            "SELECT count(*) FROM (SELECT DISTINCT doc_id FROM passages WHERE collection = ?)",
            (cid,),
        ).fetchone()[0]
    )


def _collection(db: sqlite3.Connection, name: str) -> tuple[int, int]:
    row = db.execute("SELECT id, dim FROM collections WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise not_found(name)
    return int(row[0]), int(row[1])


def _passage(row: Sequence[Any]) -> Passage:
    pid, doc_id, text, meta, blob = row
    return Passage(pid, doc_id, text, json.loads(meta), np.frombuffer(blob, dtype=np.float32))

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
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, LiteralString

import numpy as np
import sqlean  # type: ignore[import-untyped]

from konak.hub.knowledge.common import check_quota, metadata_json, not_found, select_collections
from konak.hub.knowledge.filters import Filter
from konak.hub.knowledge.sqlite_vec_sql import (
    SCHEMA,
    collection_of,
    compile_filter,
    count_documents,
    load,
    meta_rows,
    passage_of,
    usage_of,
)
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
        return storage.connect(self.path, SCHEMA, module=sqlean, load=load)

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
        with t.write_lock, _failure(t.path), storage.transaction(t.writer):
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
            return [_info(row[1:], count_documents(db, row[0])) for row in rows]

    def get_collection(self, tenant: str, name: str) -> CollectionInfo:
        reading = self._read(tenant)
        if reading is None:
            raise not_found(name)
        with reading as db:
            row = db.execute(f"{_INFO} WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise not_found(name)
            return _info(row[1:], count_documents(db, row[0]))

    def delete_collection(self, tenant: str, name: str) -> None:
        t = self._tenant(tenant, create=False)
        if t is None:
            raise not_found(name)
        with t.write_lock, _failure(t.path), storage.transaction(t.writer):
            cid, _ = collection_of(t.writer, name)
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
        rows = self._passages(tenant, collection, "doc_id = ? ORDER BY seq", (doc_id,))
        return [passage_of(row[:5]) for row in rows]

    def _passages(
        self, tenant: str, collection: str, where: LiteralString, params: tuple[Any, ...]
    ) -> list[Any]:
        """(id, doc_id, text, metadata, vector, pid) rows of a collection (``where``: a
        fixed clause)."""
        reading = self._read(tenant)
        if reading is None:
            raise not_found(collection)
        with reading as db:
            cid, _ = collection_of(db, collection)
            return db.execute(
                "SELECT id, doc_id, text, metadata, vector, pid FROM passages "  # noqa: S608
                f"WHERE collection = ? AND {where}",
                (cid, *params),
            ).fetchall()

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
                clause, extra, candidates = compile_filter(where)
                if candidates:  # read the candidates by pid, not the whole collection
                    sql = f"+{sql}"
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
        rows = self._passages(tenant, collection, "pid > ? ORDER BY pid LIMIT ?", (after, batch))
        return [passage_of(row[:5]) for row in rows], (rows[-1][5] if rows else after)

    def usage(self, tenant: str) -> Usage:
        reading = self._read(tenant)
        if reading is None:
            return Usage(0, 0)
        with reading as db:
            return usage_of(db)

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
            self.collection_id, self.dim = collection_of(self._db, collection)
        except BaseException:
            self._end("ROLLBACK")
            raise
        self._changed = False

    def upsert(self, passages: Sequence[Passage], doc_ids: Sequence[str], limits: Limits) -> int:
        with _failure(self._tenant.path):
            return self._upsert(passages, doc_ids, limits)

    def _upsert(self, passages: Sequence[Passage], doc_ids: Sequence[str], limits: Limits) -> int:
        db = self._db
        old = self._existing(doc_ids)
        # The write lock is ours: passage ids are numbered here, so inserts go in batches.
        first = int(db.execute("SELECT coalesce(max(pid), 0) + 1 FROM passages").fetchone()[0])
        rows = []
        index_rows: list[tuple[str, str, Any, int]] = []
        added = 0
        for seq, p in enumerate(passages):
            meta = metadata_json(p.metadata)
            size = passage_bytes(p, meta)
            added += size
            pid = first + seq
            rows.append(
                (
                    pid,
                    self.collection_id,
                    p.id,
                    p.doc_id,
                    seq,
                    p.text,
                    meta,
                    p.vector.tobytes(),
                    size,
                )
            )
            index_rows.extend(meta_rows(pid, dict(p.metadata)))
        removed = sum(b for _, b in old)
        check_quota(limits, usage_of(db), len(passages) - len(old), added - removed)
        self._remove(old)
        db.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?, ?, ?)", index_rows)
        self._count(len(passages) - len(old), added - removed)
        return len(passages)

    def _existing(self, doc_ids: Sequence[str]) -> list[tuple[int, int]]:
        """(pid, bytes) of the passages of these documents."""
        return self._db.execute(
            "SELECT pid, bytes FROM passages WHERE collection = ? "
            "AND doc_id IN (SELECT value FROM json_each(?))",
            (self.collection_id, json.dumps(list(doc_ids))),
        ).fetchall()

    def _remove(self, old: Sequence[tuple[int, int]]) -> None:
        if old:
            pids = [(pid,) for pid, _ in old]
            self._db.executemany("DELETE FROM meta WHERE pid = ?", pids)
            self._db.executemany("DELETE FROM passages WHERE pid = ?", pids)

    def delete(self, doc_ids: Sequence[str]) -> int:
        with _failure(self._tenant.path):
            old = self._existing(doc_ids)
            self._remove(old)
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
            with _failure(self._tenant.path):
                if self._db.in_transaction:
                    self._db.execute(statement)
        finally:
            self._tenant.write_lock.release()


@contextmanager
def _failure(path: Path) -> Iterator[None]:
    """SQLite's errors (a full disk, a file gone bad) as BackendUnavailable naming the file."""
    try:
        yield
    except sqlean.Error as exc:
        raise BackendUnavailable(f"{path}: {exc}") from exc

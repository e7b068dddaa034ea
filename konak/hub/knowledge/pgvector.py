"""The server backend: PostgreSQL + pgvector, one schema per tenant.

A tenant's collections and passages are tables of its own schema, named through
``psycopg.sql.Identifier`` (never spliced), so no query for one tenant names another's
tables. Search is exact (``<=>``, cosine distance, over the rows the filter leaves): an HNSW
index made inserts about 400 times slower and missed true neighbours; docs/knowledge.md has
the figures. Equality filters use a GIN index on the metadata; values are always bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, LiteralString

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from konak.hub.knowledge.common import check_quota, metadata_json, not_found, select_collections
from konak.hub.knowledge.filters import Filter
from konak.hub.knowledge.pgvector_sql import (
    INFO,
    TABLES,
    collection_of,
    compile_filter,
    configure,
    count_documents,
    schema_name,
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

CONNECT_TIMEOUT_SECONDS: Final = 5.0  # then the backend answers BackendUnavailable
MAX_CONNECTIONS: Final = 4


class PgvectorBackend:
    """PostgreSQL + pgvector at ``dsn`` (a secret: never logged)."""

    def __init__(self, dsn: str) -> None:
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            dsn,
            min_size=0,
            max_size=MAX_CONNECTIONS,
            kwargs={"connect_timeout": int(CONNECT_TIMEOUT_SECONDS)},
            configure=configure,
            check=ConnectionPool.check_connection,
            timeout=CONNECT_TIMEOUT_SECONDS,
            open=True,
            name="konak-knowledge",
        )
        self._schemas: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection, in a transaction committed at the end (rolled back on an
        error); an unreachable server is BackendUnavailable."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise BackendUnavailable(
                "the knowledge database is unreachable (no connection within "
                f"{CONNECT_TIMEOUT_SECONDS:g} s)"
            ) from exc
        except psycopg.Error as exc:  # the server went away, or a table someone dropped
            raise BackendUnavailable(f"the knowledge database failed: {exc}") from exc

    def _schema(
        self, conn: psycopg.Connection[Any], tenant: str, *, create: bool
    ) -> sql.Identifier | None:
        if not is_identifier(tenant):
            raise KnowledgeError(f"invalid tenant id {tenant[:70]!r}")
        name = schema_name(tenant)
        ident = sql.Identifier(name)
        with self._lock:
            if name in self._schemas:
                return ident
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)).fetchone()
        if found is None or create:
            if not create:
                return None
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
            for statement in TABLES:
                conn.execute(sql.SQL(statement).format(s=ident))
        with self._lock:
            self._schemas.add(name)
        return ident

    # ------------------------------------------------------------------ collections
    def create_collection(
        self, tenant: str, name: str, description: str, dim: int, model: str
    ) -> CollectionInfo:
        now = time.time()
        with self._conn() as conn:
            s = self._schema(conn, tenant, create=True)
            try:
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {}.collections (name, description, dim, model, created_at,"
                        " updated_at) VALUES (%s, %s, %s, %s, %s, %s)"
                    ).format(s),
                    (name, description, dim, model, now, now),
                )
            except psycopg.errors.UniqueViolation as exc:
                raise CollectionExists(f"collection {name!r} exists") from exc
        return CollectionInfo(name, description, dim, model, 0, 0, 0, now, now)

    def list_collections(self, tenant: str) -> list[CollectionInfo]:
        with self._conn() as conn:
            s = self._schema(conn, tenant, create=False)
            if s is None:
                return []
            rows = conn.execute(sql.SQL(INFO + " ORDER BY name").format(s=s)).fetchall()
            return [_info(row[1:], count_documents(conn, s, row[0])) for row in rows]

    def get_collection(self, tenant: str, name: str) -> CollectionInfo:
        with self._conn() as conn:
            s = self._schema(conn, tenant, create=False)
            if s is None:
                raise not_found(name)
            row = conn.execute(sql.SQL(INFO + " WHERE name = %s").format(s=s), (name,)).fetchone()
            if row is None:
                raise not_found(name)
            return _info(row[1:], count_documents(conn, s, row[0]))

    def delete_collection(self, tenant: str, name: str) -> None:
        with self._conn() as conn:
            s = self._schema(conn, tenant, create=False)
            if s is None:
                raise not_found(name)
            done = conn.execute(
                sql.SQL("DELETE FROM {}.collections WHERE name = %s").format(s), (name,)
            )
            if done.rowcount == 0:
                raise not_found(name)

    def begin(self, tenant: str, collection: str) -> PgWriter:
        return PgWriter(self, tenant, collection)

    # ------------------------------------------------------------------ reading
    def get_document(self, tenant: str, collection: str, doc_id: str) -> list[Passage]:
        rows = self._passages(tenant, collection, "doc_id = %s ORDER BY seq", (doc_id,))
        return [Passage(*row[:5]) for row in rows]

    def _passages(
        self, tenant: str, collection: str, where: LiteralString, params: tuple[Any, ...]
    ) -> list[Any]:
        """(id, doc_id, text, metadata, vector, pid) rows of a collection (``where``: a
        fixed clause)."""
        with self._conn() as conn:
            s = self._schema(conn, tenant, create=False)
            if s is None:
                raise not_found(collection)
            cid, _ = collection_of(conn, s, collection)
            query = sql.SQL(
                "SELECT id, doc_id, text, metadata, vector, pid FROM {}.passages "
                "WHERE collection = %s AND "
            ).format(s) + sql.SQL(where)
            return conn.execute(query, (cid, *params), binary=True).fetchall()

    def search(
        self,
        tenant: str,
        collections: Sequence[str] | None,
        vector: np.ndarray,
        k: int,
        where: Filter | None,
    ) -> list[Hit]:
        with self._conn() as conn:
            s = self._schema(conn, tenant, create=False)
            if s is None:
                if collections:
                    raise not_found(collections[0])
                return []
            rows = conn.execute(sql.SQL("SELECT id, name, dim FROM {}.collections").format(s))
            names = select_collections(rows.fetchall(), collections, len(vector))
            if not names:
                return []
            test: sql.Composable = sql.SQL("collection = ANY(%s)")
            params: list[Any] = [vector.astype(np.float32), list(names)]
            if where is not None:
                clause, extra = compile_filter(where)
                test = sql.SQL("{} AND {}").format(test, clause)
                params.extend(extra)
            found = conn.execute(
                sql.SQL(
                    "SELECT collection, id, doc_id, text, metadata, vector <=> %s AS distance "
                    "FROM {s}.passages WHERE {test} ORDER BY distance, pid LIMIT %s"
                ).format(s=s, test=test),
                [*params, k],
            ).fetchall()
        return [
            Hit(names[cid], pid, doc, text, meta, 1.0 - float(distance))
            for cid, pid, doc, text, meta, distance in found
        ]

    def export(
        self, tenant: str, collection: str, after: int, batch: int
    ) -> tuple[list[Passage], int]:
        rows = self._passages(tenant, collection, "pid > %s ORDER BY pid LIMIT %s", (after, batch))
        return [Passage(*row[:5]) for row in rows], (int(rows[-1][5]) if rows else after)

    def usage(self, tenant: str) -> Usage:
        with self._conn() as conn:
            s = self._schema(conn, tenant, create=False)
            return Usage(0, 0) if s is None else usage_of(conn, s)

    def close(self) -> None:
        self._pool.close()

    # ------------------------------------------------------------------ for PgWriter
    def _checkout(self) -> psycopg.Connection[Any]:
        try:
            return self._pool.getconn()
        except PoolTimeout as exc:
            raise BackendUnavailable(
                "the knowledge database is unreachable (no connection within "
                f"{CONNECT_TIMEOUT_SECONDS:g} s)"
            ) from exc

    def _checkin(self, conn: psycopg.Connection[Any]) -> None:
        self._pool.putconn(conn)


class PgWriter:
    """One transaction on one collection; the tenant's writes are serialised by a lock on
    its collections table (readers go on)."""

    def __init__(self, backend: PgvectorBackend, tenant: str, collection: str) -> None:
        self._backend = backend
        self._conn = conn = backend._checkout()
        try:
            s = backend._schema(conn, tenant, create=False)
            if s is None:
                raise not_found(collection)
            self._s = s
            conn.execute(sql.SQL("LOCK TABLE {}.collections IN SHARE ROW EXCLUSIVE MODE").format(s))
            self.collection_id, self.dim = collection_of(conn, s, collection)
        except BaseException:
            self._end(commit=False)
            raise

    def upsert(self, passages: Sequence[Passage], doc_ids: Sequence[str], limits: Limits) -> int:
        conn, s, cid = self._conn, self._s, self.collection_id
        with _errors():
            old = conn.execute(
                sql.SQL(
                    "SELECT count(*), coalesce(sum(bytes), 0) FROM {}.passages "
                    "WHERE collection = %s AND doc_id = ANY(%s)"
                ).format(s),
                (cid, list(doc_ids)),
            ).fetchone()
            assert old is not None
            rows = []
            added = 0
            for seq, p in enumerate(passages):
                meta = metadata_json(p.metadata)
                size = passage_bytes(p, meta)
                added += size
                rows.append((cid, p.id, p.doc_id, seq, p.text, Jsonb(p.metadata), p.vector, size))
            vectors, size = len(passages) - int(old[0]), added - int(old[1])
            check_quota(limits, usage_of(conn, s), vectors, size)
            conn.execute(
                sql.SQL(
                    "DELETE FROM {}.passages WHERE collection = %s AND doc_id = ANY(%s)"
                ).format(s),
                (cid, list(doc_ids)),
            )
            copy_sql = sql.SQL(
                "COPY {}.passages (collection, id, doc_id, seq, text, metadata, vector, bytes) "
                "FROM STDIN (FORMAT BINARY)"
            ).format(s)
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                copy.set_types(["int4", "text", "text", "int4", "text", "jsonb", "vector", "int4"])
                for row in rows:
                    copy.write_row(row)
            self._count(vectors, size)
        return len(passages)

    def delete(self, doc_ids: Sequence[str]) -> int:
        conn, s = self._conn, self._s
        with _errors():
            row = conn.execute(
                sql.SQL(
                    "WITH gone AS (DELETE FROM {}.passages WHERE collection = %s "
                    "AND doc_id = ANY(%s) RETURNING bytes) SELECT count(*), "
                    "coalesce(sum(bytes), 0) FROM gone"
                ).format(s),
                (self.collection_id, list(doc_ids)),
            ).fetchone()
            assert row is not None
            self._count(-int(row[0]), -int(row[1]))
        return int(row[0])

    def _count(self, passages: int, size: int) -> None:
        self._conn.execute(
            sql.SQL(
                "UPDATE {}.collections SET passages = passages + %s, bytes = bytes + %s, "
                "updated_at = %s WHERE id = %s"
            ).format(self._s),
            (passages, size, time.time(), self.collection_id),
        )

    def commit(self) -> None:
        self._end(commit=True)

    def rollback(self) -> None:
        self._end(commit=False)

    def _end(self, *, commit: bool) -> None:
        try:
            with _errors():
                if commit:
                    self._conn.commit()
                else:
                    self._conn.rollback()
        finally:
            self._backend._checkin(self._conn)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        raise BackendUnavailable(f"the knowledge database failed: {exc}") from exc


def _info(row: Sequence[Any], documents: int) -> CollectionInfo:
    name, description, dim, model, passages, size, created, updated = row
    return CollectionInfo(
        name, description, dim, model, documents, int(passages), int(size), created, updated
    )

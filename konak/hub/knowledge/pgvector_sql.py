"""The SQL of the pgvector backend: a tenant's schema and tables, numpy vectors in pgvector's
binary form, the filter compiled with every value bound, and the small queries both reading
and writing use. Identifiers only through ``psycopg.sql.Identifier``."""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any, Final

import numpy as np
import psycopg
from psycopg import sql
from psycopg.adapt import Buffer, Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo
from psycopg.types.json import Jsonb

from konak.hub.knowledge.common import not_found
from konak.hub.knowledge.filters import Filter
from konak.hub.knowledge.types import BackendUnavailable, Usage

SCHEMA_PREFIX: Final = "kn_"

TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS {s}.collections (
        id serial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        description text NOT NULL,
        dim integer NOT NULL,
        model text NOT NULL,
        passages bigint NOT NULL DEFAULT 0,
        bytes bigint NOT NULL DEFAULT 0,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.passages (
        pid bigserial PRIMARY KEY,
        collection integer NOT NULL REFERENCES {s}.collections (id) ON DELETE CASCADE,
        id text NOT NULL,
        doc_id text NOT NULL,
        seq integer NOT NULL,
        text text NOT NULL,
        metadata jsonb NOT NULL,
        vector vector NOT NULL,
        bytes integer NOT NULL,
        UNIQUE (collection, id))""",
    "CREATE INDEX IF NOT EXISTS passages_doc ON {s}.passages (collection, doc_id, seq)",
    "CREATE INDEX IF NOT EXISTS passages_meta ON {s}.passages USING gin (metadata jsonb_path_ops)",
)
INFO: Final = (
    "SELECT id, name, description, dim, model, passages, bytes, created_at, updated_at "
    "FROM {s}.collections"
)


def schema_name(tenant: str) -> str:
    """The tenant's schema: ``kn_<tenant>``, shortened with a hash past PostgreSQL's 63."""
    name = SCHEMA_PREFIX + tenant
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(tenant.encode()).hexdigest()[:16]
    return f"{SCHEMA_PREFIX}{tenant[:43]}_{digest}"


class _VectorDumper(Dumper):
    """numpy float32 vectors in pgvector's binary form."""

    format = Format.BINARY

    def dump(self, obj: Any) -> Buffer:
        vec = np.asarray(obj, dtype=">f4")
        return struct.pack(">HH", vec.shape[0], 0) + vec.tobytes()


class _VectorLoader(Loader):
    def load(self, data: Buffer) -> np.ndarray:
        text = bytes(data).decode()
        return np.array(text[1:-1].split(","), dtype=np.float32)


class _VectorBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> np.ndarray:
        return np.frombuffer(bytes(data)[4:], dtype=">f4").astype(np.float32)


def configure(conn: psycopg.Connection[Any]) -> None:
    """Each new connection: pgvector present, its type adapted to numpy."""
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise BackendUnavailable("pgvector's vector type is missing in the knowledge database")
    info.register(conn)  # COPY names the type
    dumper = type("VectorDumper", (_VectorDumper,), {"oid": info.oid})
    conn.adapters.register_dumper(np.ndarray, dumper)
    conn.adapters.register_loader(info.oid, _VectorLoader)
    conn.adapters.register_loader(info.oid, _VectorBinaryLoader)
    conn.commit()


def compile_filter(where: Filter) -> tuple[sql.Composed, list[Any]]:
    """The filter as SQL on ``metadata`` with bound values: equality and ``$in`` as JSON
    containment (the GIN index; a scalar field or a list holding the value), ranges as
    SQL/JSON path tests (whose path is a parameter too)."""
    parts: list[sql.Composable] = []
    params: list[Any] = []
    ranges: dict[str, list[tuple[str, Any]]] = {}
    for cond in where.conditions:
        if cond.op in ("$eq", "$ne", "$in"):
            tests = []
            for value in cond.values:
                tests.append(sql.SQL("metadata @> %s OR metadata @> %s"))
                params.extend((Jsonb({cond.field: value}), Jsonb({cond.field: [value]})))
            test = sql.SQL("({})").format(sql.SQL(" OR ").join(tests))
            parts.append(sql.SQL("NOT ") + test if cond.op == "$ne" else test)
            continue
        sign = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[cond.op]
        ranges.setdefault(cond.field, []).append((sign, cond.values[0]))
    for field, bounds in ranges.items():
        # A field's range bounds hold for one and the same value (an element of a list).
        holds = " && ".join(f"@ {sign} $v{i}" for i, (sign, _) in enumerate(bounds))
        parts.append(sql.SQL("jsonb_path_exists(metadata, %s::jsonpath, %s)"))
        values = {f"v{i}": value for i, (_, value) in enumerate(bounds)}
        params.extend((f"$.{json.dumps(field)} ? ({holds})", Jsonb(values)))
    return sql.SQL(" AND ").join(parts), params


def usage_of(conn: psycopg.Connection[Any], s: sql.Identifier) -> Usage:
    row = conn.execute(
        sql.SQL(
            "SELECT coalesce(sum(passages), 0), coalesce(sum(bytes), 0) FROM {}.collections"
        ).format(s)
    ).fetchone()
    assert row is not None
    return Usage(int(row[0]), int(row[1]))


def count_documents(conn: psycopg.Connection[Any], s: sql.Identifier, cid: int) -> int:
    row = conn.execute(
        sql.SQL("SELECT count(DISTINCT doc_id) FROM {}.passages WHERE collection = %s").format(s),
        (cid,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def collection_of(conn: psycopg.Connection[Any], s: sql.Identifier, name: str) -> tuple[int, int]:
    row = conn.execute(
        sql.SQL("SELECT id, dim FROM {}.collections WHERE name = %s").format(s), (name,)
    ).fetchone()
    if row is None:
        raise not_found(name)
    return int(row[0]), int(row[1])

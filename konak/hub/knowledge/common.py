"""What both backends share: quota checks, the choice of collections a search reads, and
the errors they raise alike."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from konak.hub.knowledge.types import (
    CollectionNotFound,
    InvalidDocument,
    Limits,
    Metadata,
    QuotaExceeded,
    Usage,
)

Id = TypeVar("Id")


def metadata_json(metadata: Metadata) -> str:
    """Metadata as stored: compact JSON."""
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))


def check_quota(limits: Limits, usage: Usage, vectors: int, size: int) -> None:
    """QuotaExceeded when adding ``vectors`` and ``size`` bytes would pass the limits (a
    write that shrinks what is stored is always allowed)."""
    most = limits.max_vectors
    if most is not None and vectors > 0 and usage.vectors + vectors > most:
        raise QuotaExceeded(
            f"quota max_vectors ({most}) reached: {usage.vectors} stored, {vectors} more refused",
            quota="max_vectors",
        )
    most = limits.max_bytes
    if most is not None and size > 0 and usage.bytes + size > most:
        raise QuotaExceeded(
            f"quota max_vector_bytes ({most}) reached: {usage.bytes} bytes stored, "
            f"{size} more refused",
            quota="max_vector_bytes",
        )


def select_collections(
    rows: Iterable[Sequence[Any]], names: Sequence[str] | None, dim: int
) -> dict[Any, str]:
    """id -> name of the collections a search reads, from ``(id, name, dim)`` rows: every
    one of ``dim`` dimensions when ``names`` is None, else exactly those named."""
    by_name = {name: (cid, d) for cid, name, d in rows}
    wanted = list(by_name) if names is None else list(dict.fromkeys(names))
    out: dict[Any, str] = {}
    for name in wanted:
        if name not in by_name:
            raise not_found(name)
        cid, d = by_name[name]
        if d != dim:
            if names is None:
                continue  # searching everything: collections of another model are skipped
            raise InvalidDocument(f"vector: {dim} dimensions, collection {name!r} has {d}")
        out[cid] = name
    return out


def not_found(name: str) -> CollectionNotFound:
    """The error for a collection the tenant does not have."""
    return CollectionNotFound(f"no collection {name!r}")

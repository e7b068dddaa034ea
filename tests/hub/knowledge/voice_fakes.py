"""A small in-memory stand-in for ``KnowledgeService`` at the voice modules' seam: words
hashed into 384 dimensions, cosine search, ``on_change`` callbacks."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from konak.hub.knowledge.types import CollectionInfo, CollectionNotFound, Hit

DIM = 384
_WORD = re.compile(r"[a-z0-9]+")


def fake_vector(text: str) -> np.ndarray:
    """A bag of hashed words, L2-normalised (the same words, the same direction)."""
    vec = np.zeros(DIM, dtype=np.float32)
    for word in _WORD.findall(text.lower()):
        vec[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIM] += 1.0
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm else vec


class FakeKnowledge:
    """Tenants' collections of ``(doc id, text, metadata)`` in memory."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, list[tuple[str, str, dict[str, Any]]]]] = {}
        self.callbacks: list[Callable[[str, str], None]] = []
        self.searches: list[tuple[str, tuple[str, ...] | None]] = []

    def add(self, tenant: str, collection: str, doc_id: str, text: str, **meta: Any) -> None:
        """Upsert one document and tell the ``on_change`` callbacks."""
        docs = self.data.setdefault(tenant, {}).setdefault(collection, [])
        docs[:] = [d for d in docs if d[0] != doc_id] + [(doc_id, text, meta)]
        for callback in self.callbacks:
            callback(tenant, collection)

    async def list_collections(self, tenant: str) -> list[CollectionInfo]:
        return [
            CollectionInfo(name, "", DIM, "fake", len(docs), len(docs), 0, 0.0, 0.0)
            for name, docs in sorted(self.data.get(tenant, {}).items())
        ]

    async def search(
        self,
        tenant: str,
        collections: Sequence[str] | None,
        *,
        text: str | None = None,
        vector: Sequence[float] | None = None,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        self.searches.append((tenant, tuple(collections) if collections is not None else None))
        mine = self.data.get(tenant, {})
        names = list(collections) if collections is not None else list(mine)
        for name in names:
            if name not in mine:
                raise CollectionNotFound(f"no collection {name!r}")
        query = (
            np.asarray(vector, dtype=np.float32) if vector is not None else fake_vector(text or "")
        )
        hits = [
            Hit(name, doc_id, doc_id, body, meta, float(fake_vector(body) @ query))
            for name in names
            for doc_id, body, meta in mine[name]
        ]
        return sorted(hits, key=lambda h: -h.score)[:k]

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([fake_vector(t) for t in texts])

    def on_change(self, callback: Callable[[str, str], None]) -> None:
        self.callbacks.append(callback)

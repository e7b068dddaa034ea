"""A small in-memory stand-in for ``KnowledgeService`` at the voice modules' seam: exact
cosine search, ``on_change`` callbacks, and words hashed into 384 dimensions (or the real
embedder's vectors, for the calibration)."""

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


def fake_embed(texts: Sequence[str]) -> np.ndarray:
    """``fake_vector`` of each text, as rows."""
    return np.stack([fake_vector(t) for t in texts])


Doc = tuple[str, str, dict[str, Any], np.ndarray]  # id, text, metadata, vector


class FakeKnowledge:
    """Tenants' collections of documents (one passage each) in memory."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray] = fake_embed) -> None:
        self.embed_now = embed
        self.data: dict[str, dict[str, list[Doc]]] = {}
        self.callbacks: list[Callable[[str, str], None]] = []
        self.searches: list[tuple[str, tuple[str, ...] | None]] = []

    def add(self, tenant: str, collection: str, doc_id: str, text: str, **meta: Any) -> None:
        """Upsert one document and tell the ``on_change`` callbacks."""
        docs = self.data.setdefault(tenant, {}).setdefault(collection, [])
        vector = self.embed_now([text])[0]
        docs[:] = [d for d in docs if d[0] != doc_id] + [(doc_id, text, meta, vector)]
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
        query = np.asarray(vector if vector is not None else self.embed_now([text or ""])[0])
        hits = [
            Hit(name, doc_id, doc_id, body, meta, float(vec @ query))
            for name in names
            for doc_id, body, meta, vec in mine[name]
        ]
        return sorted(hits, key=lambda h: -h.score)[:k]

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_now(texts)

    def on_change(self, callback: Callable[[str, str], None]) -> None:
        self.callbacks.append(callback)

"""The knowledge layer's types: what callers upsert and get back, the backend protocol and
the errors (each with a stable code)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from konak.errors import KonakError

if TYPE_CHECKING:
    from konak.hub.knowledge.filters import Filter

JsonScalar = str | int | float | bool | None
Metadata = Mapping[str, JsonScalar | list[JsonScalar]]  # flat; nested objects refused


@dataclass(frozen=True, slots=True)
class DocumentIn:
    """What a caller upserts: ``id`` replaces the document with that id."""

    id: str  # 1..200 chars
    text: str  # may be long: chunked by the service
    metadata: Metadata = field(default_factory=dict)
    vector: Sequence[float] | None = None  # given: used as is (one chunk; dim must match)


@dataclass(frozen=True, slots=True)
class Passage:
    """What a backend stores: one chunk of a document."""

    id: str  # "<doc id>" for a single chunk, "<doc id>#<n>" (n from 1) otherwise
    doc_id: str
    text: str
    metadata: Metadata
    vector: np.ndarray  # float32, L2-normalised, shape (dim,)


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result."""

    collection: str
    id: str  # passage id
    doc_id: str
    text: str
    metadata: Metadata
    score: float  # cosine similarity, 1.0 = same direction


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    """A collection and its size."""

    name: str  # [a-z0-9][a-z0-9_-]{0,62}
    description: str
    dim: int
    model: str  # embedding model id, e.g. "all-minilm-l6-v2"
    documents: int
    passages: int
    bytes: int  # storage estimate used for the quota
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Usage:
    """What a tenant stores, as the quotas count it."""

    vectors: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Limits:
    """A tenant's storage quota as a backend enforces it inside its write transaction."""

    max_vectors: int | None = None
    max_bytes: int | None = None


class KnowledgeError(KonakError):
    """Base of the knowledge layer's errors."""

    code = "knowledge_error"


class CollectionNotFound(KnowledgeError):
    """No such collection for this tenant (HTTP 404)."""

    code = "collection_not_found"


class CollectionExists(KnowledgeError):
    """A collection with this name exists (409)."""

    code = "collection_exists"


class InvalidDocument(KnowledgeError):
    """A document (or a query vector) is unusable; the message names the field (422)."""

    code = "invalid_document"


class InvalidFilter(KnowledgeError):
    """A metadata filter is not one the filter language allows (422)."""

    code = "invalid_filter"


class QuotaExceeded(KnowledgeError):
    """The write would take the tenant over ``max_vectors`` or ``max_vector_bytes``."""

    code = "quota_exceeded"

    def __init__(self, message: str, *, quota: str) -> None:
        super().__init__(message)
        self.quota = quota  # "max_vectors" or "max_vector_bytes"


class BackendUnavailable(KnowledgeError):
    """The store (or the embedding model) cannot be used now (503)."""

    code = "knowledge_unavailable"


def passage_bytes(passage: Passage, metadata_json: str) -> int:
    """What a passage counts toward ``max_vector_bytes``: its vector, text and metadata."""
    return int(passage.vector.nbytes) + len(passage.text.encode()) + len(metadata_json.encode())


class BackendWriter(Protocol):
    """One open write transaction of a backend, for one tenant's collection."""

    dim: int  # the collection's

    def upsert(self, passages: Sequence[Passage], doc_ids: Sequence[str], limits: Limits) -> int:
        """Replace the documents ``doc_ids`` by ``passages``; QuotaExceeded before writing."""
        ...

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Delete documents; the number of passages deleted."""
        ...

    def commit(self) -> None:
        """Make the writes durable and end the transaction."""
        ...

    def rollback(self) -> None:
        """Undo every write of the transaction and end it."""
        ...


class VectorBackend(Protocol):
    """Where passages are stored and searched. Blocking: the service calls it in a thread.
    Every method is scoped to one tenant; a backend never returns another tenant's rows.
    A new backend (Pinecone, Weaviate, Elasticsearch, ...) is one module implementing this."""

    def create_collection(
        self, tenant: str, name: str, description: str, dim: int, model: str
    ) -> CollectionInfo:
        """Create a collection; CollectionExists when the name is taken."""
        ...

    def list_collections(self, tenant: str) -> list[CollectionInfo]:
        """The tenant's collections, by name."""
        ...

    def get_collection(self, tenant: str, name: str) -> CollectionInfo:
        """One collection; CollectionNotFound."""
        ...

    def delete_collection(self, tenant: str, name: str) -> None:
        """Delete a collection and its passages; CollectionNotFound."""
        ...

    def begin(self, tenant: str, collection: str) -> BackendWriter:
        """Open a write transaction on a collection (CollectionNotFound)."""
        ...

    def get_document(self, tenant: str, collection: str, doc_id: str) -> list[Passage]:
        """A document's passages in order (empty when there is none)."""
        ...

    def search(
        self,
        tenant: str,
        collections: Sequence[str] | None,
        vector: np.ndarray,
        k: int,
        where: Filter | None,
    ) -> list[Hit]:
        """The ``k`` passages nearest ``vector`` (cosine) that match ``where``, best first."""
        ...

    def export(
        self, tenant: str, collection: str, after: int, batch: int
    ) -> tuple[list[Passage], int]:
        """Up to ``batch`` passages stored after the cursor ``after`` (0 first), and the
        cursor for the next call."""
        ...

    def usage(self, tenant: str) -> Usage:
        """What the tenant stores in all its collections."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

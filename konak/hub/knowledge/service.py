"""``KnowledgeService``: the tenant-scoped facade the API, MCP and voice turns use.

It validates documents, chunks and embeds text, enforces the tenant's storage quota and runs
the backend's blocking work in a thread. Without the embedding model the hub still runs:
searching by text and upserting text without vectors answer BackendUnavailable; everything
given vectors works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Final, Protocol, TypeVar

import numpy as np

from konak.hub.knowledge.chunking import chunk
from konak.hub.knowledge.documents import (
    check_document,
    check_field,
    check_tenant,
    query_vector,
    unit_vectors,
)
from konak.hub.knowledge.filters import parse_filter
from konak.hub.knowledge.settings import KnowledgeSettings
from konak.hub.knowledge.types import (
    BackendUnavailable,
    BackendWriter,
    CollectionInfo,
    DocumentIn,
    Hit,
    InvalidDocument,
    KnowledgeError,
    Limits,
    Passage,
    Usage,
    VectorBackend,
)
from konak.hub.quotas import TenantQuota
from konak.protocol.topics import is_identifier

logger = logging.getLogger(__name__)

T = TypeVar("T")
CLOSE_WAIT_SECONDS: Final = 30.0  # close() waits this long for backend calls still running
DEFAULT_DIM: Final = 384  # all-minilm-l6-v2's, for collections made without the model loaded
MAX_DESCRIPTION_CHARS: Final = 2000
MAX_K: Final = 100


class TextEmbedder(Protocol):
    """What the service needs of ``konak.hub.knowledge.embedder.Embedder``."""

    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised."""
        ...


def open_backend(settings: KnowledgeSettings) -> VectorBackend:
    """The backend the settings choose (blocking: call it in a thread)."""
    if settings.backend == "postgres":
        from konak.hub.knowledge.pgvector import PgvectorBackend

        return PgvectorBackend(settings.postgres_dsn)
    from konak.hub.knowledge.sqlite_vec import SqliteVecBackend

    if settings.directory is None:
        raise KnowledgeError("knowledge.directory is not set")
    return SqliteVecBackend(settings.directory)


class Writer:
    """Writes inside one transaction of ``KnowledgeService.transaction``."""

    def __init__(self, service: KnowledgeService, tenant: str, writer: BackendWriter) -> None:
        self._service = service
        self._tenant = tenant
        self._writer = writer
        self.changed = False

    async def upsert(self, docs: Sequence[DocumentIn]) -> int:
        """Add or replace documents; the passages written (QuotaExceeded: nothing)."""
        passages, ids = await self._service._prepare(docs, self._writer.dim)
        limits = self._service._limits(self._tenant)
        written = await self._service._run(self._writer.upsert, passages, ids, limits)
        self.changed = True
        return written

    async def delete(self, doc_ids: Sequence[str]) -> int:
        """Delete documents; the passages deleted."""
        deleted = await self._service._run(self._writer.delete, list(doc_ids))
        self.changed = self.changed or deleted > 0
        return deleted


class KnowledgeService:
    """Each tenant's collections (docs/knowledge.md); every method takes the tenant first."""

    def __init__(
        self,
        settings: KnowledgeSettings,
        backend: VectorBackend,
        quotas: Callable[[str], TenantQuota],
        embedder: TextEmbedder | None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.embedder = embedder
        self._quotas = quotas
        self._callbacks: list[Callable[[str, str], None]] = []
        self._in_flight: set[asyncio.Future[Any]] = set()

    def _start(self, call: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``call`` on a worker thread, tracked until it ends (see :meth:`_run`)."""
        future = asyncio.ensure_future(asyncio.to_thread(call, *args))
        self._in_flight.add(future)
        future.add_done_callback(self._in_flight.discard)
        return future

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        """``call`` on a worker thread. A caller that is cancelled stops waiting, but the
        call runs to its end (a database call cannot be interrupted), and :meth:`close`
        waits for it: closing a connection under a running call crashes the process."""
        return await asyncio.shield(self._start(call, *args))

    @classmethod
    async def open(
        cls,
        settings: KnowledgeSettings,
        *,
        quotas: Callable[[str], TenantQuota],
        embedder: TextEmbedder | None,
    ) -> KnowledgeService:
        """Open the configured backend."""
        backend = await asyncio.to_thread(open_backend, settings)
        return cls(settings, backend, quotas, embedder)

    async def close(self) -> None:
        """Close the backend's connections once the calls still running have ended (and
        those they started, such as the rollback of a transaction cancelled as it began)."""
        deadline = asyncio.get_running_loop().time() + CLOSE_WAIT_SECONDS
        while self._in_flight:
            left = deadline - asyncio.get_running_loop().time()
            _done, running = await asyncio.wait(set(self._in_flight), timeout=max(left, 0))
            await asyncio.sleep(0)  # let the done callbacks run
            if running and left <= 0:
                logger.warning(
                    "knowledge: %d backend calls still running after %.0f s; "
                    "not closing their connections",
                    len(running),
                    CLOSE_WAIT_SECONDS,
                )
                return
        await asyncio.to_thread(self.backend.close)

    @property
    def dim(self) -> int:
        """The dimension of new collections: the model's."""
        return self.embedder.dim if self.embedder is not None else DEFAULT_DIM

    # ---------------------------------------------------------------- collections
    async def create_collection(
        self, tenant: str, name: str, description: str = ""
    ) -> CollectionInfo:
        """A new, empty collection (CollectionExists, InvalidDocument for a bad name)."""
        check_tenant(tenant)
        if not is_identifier(name):
            raise InvalidDocument(
                f"name: {name[:70]!r} is not a collection name (a-z, 0-9, '_', '-'; up to 63)"
            )
        if len(description) > MAX_DESCRIPTION_CHARS:
            raise InvalidDocument(f"description: at most {MAX_DESCRIPTION_CHARS} characters")
        check_field(description, "description")
        model = self.embedder.model_id if self.embedder is not None else self.settings.model
        info = await self._run(
            self.backend.create_collection, tenant, name, description, self.dim, model
        )
        self._changed(tenant, name)
        return info

    async def list_collections(self, tenant: str) -> list[CollectionInfo]:
        """The tenant's collections, by name."""
        check_tenant(tenant)
        return await self._run(self.backend.list_collections, tenant)

    async def get_collection(self, tenant: str, name: str) -> CollectionInfo:
        """One collection (CollectionNotFound)."""
        check_tenant(tenant)
        return await self._run(self.backend.get_collection, tenant, name)

    async def delete_collection(self, tenant: str, name: str) -> None:
        """Delete a collection with everything in it (CollectionNotFound)."""
        check_tenant(tenant)
        await self._run(self.backend.delete_collection, tenant, name)
        self._changed(tenant, name)

    # ---------------------------------------------------------------- documents
    async def upsert(self, tenant: str, collection: str, docs: Sequence[DocumentIn]) -> int:
        """Add or replace documents, all or none; the passages written. The quota is
        checked before anything is written."""
        async with self.transaction(tenant, collection) as writer:
            return await writer.upsert(docs)

    async def delete_documents(self, tenant: str, collection: str, doc_ids: Sequence[str]) -> int:
        """Delete documents by id; the passages deleted."""
        async with self.transaction(tenant, collection) as writer:
            return await writer.delete(doc_ids)

    async def get_document(self, tenant: str, collection: str, doc_id: str) -> list[Passage]:
        """A document's passages in order (empty: no such document)."""
        check_tenant(tenant)
        return await self._run(self.backend.get_document, tenant, collection, doc_id)

    @contextlib.asynccontextmanager
    async def transaction(self, tenant: str, collection: str) -> AsyncIterator[Writer]:
        """Writes that commit together at the end of the block, or not at all when it
        raises. Other writes to the tenant wait until it ends."""
        check_tenant(tenant)
        begun = self._start(self.backend.begin, tenant, collection)
        try:
            backend_writer = await asyncio.shield(begun)
        except asyncio.CancelledError:
            # The transaction may still begin: end it then, or it holds the tenant's lock.
            def end(future: asyncio.Future[BackendWriter]) -> None:
                if not future.cancelled() and future.exception() is None:
                    self._start(future.result().rollback)

            begun.add_done_callback(end)
            raise
        writer = Writer(self, tenant, backend_writer)
        try:
            yield writer
        except BaseException:
            # Shielded: a cancelled import still ends its transaction (and frees the lock).
            await self._run(backend_writer.rollback)
            raise
        await self._run(backend_writer.commit)
        if writer.changed:
            self._changed(tenant, collection)

    # ---------------------------------------------------------------- searching
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
        """The ``k`` passages nearest the text (or vector) that match the filter, best first;
        ``collections`` None searches all the tenant's collections of this model's size."""
        check_tenant(tenant)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidDocument(f"k: must be an integer from 1 to {MAX_K}")
        if (text is None) == (vector is None):
            raise InvalidDocument("give either text or vector to search with")
        where = parse_filter(filter)
        if vector is not None:
            query = query_vector(vector, "vector")
        else:
            assert text is not None
            check_field(text, "text")
            query = (await self.embed([text]))[0]
        names = None if collections is None else list(collections)
        return await self._run(self.backend.search, tenant, names, query, k, where)

    def export(
        self, tenant: str, collection: str, batch: int = 500
    ) -> AsyncIterator[list[Passage]]:
        """The collection's passages in batches, in the order they were stored."""
        check_tenant(tenant)
        if batch < 1:
            raise InvalidDocument("batch: must be >= 1")
        return self._export(tenant, collection, batch)

    async def _export(
        self, tenant: str, collection: str, batch: int
    ) -> AsyncIterator[list[Passage]]:
        after = 0
        while True:
            passages, after = await self._run(self.backend.export, tenant, collection, after, batch)
            if passages:
                yield passages
            if len(passages) < batch:
                return

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 normalised vectors; BackendUnavailable without the model."""
        if self.embedder is None:
            raise BackendUnavailable(
                f"the embedding model {self.settings.model!r} is not installed (konak models "
                f"pull {self.settings.model}): give vectors, or install it and restart the hub"
            )
        for i, text in enumerate(texts):
            check_field(text, f"texts[{i}]")
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return await self._run(self.embedder.embed, list(texts))

    async def usage(self, tenant: str) -> Usage:
        """What the tenant stores, as the quotas count it."""
        check_tenant(tenant)
        return await self._run(self.backend.usage, tenant)

    def on_change(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(tenant, collection)`` after every committed write or delete."""
        self._callbacks.append(callback)

    # ---------------------------------------------------------------- internals
    def _changed(self, tenant: str, collection: str) -> None:
        for callback in self._callbacks:
            try:
                callback(tenant, collection)
            except Exception:  # one subscriber's bug must not fail the write
                logger.exception("knowledge change callback failed")

    def _limits(self, tenant: str) -> Limits:
        quota = self._quotas(tenant)
        return Limits(quota.max_vectors, quota.max_vector_bytes)

    async def _prepare(
        self, docs: Sequence[DocumentIn], dim: int
    ) -> tuple[list[Passage], list[str]]:
        """Validate, chunk and embed documents (the last of a repeated id wins)."""
        latest: dict[str, tuple[int, DocumentIn, dict[str, Any]]] = {}
        for i, doc in enumerate(docs):
            metadata = check_document(doc, i, dim)
            latest.pop(doc.id, None)
            latest[doc.id] = (i, doc, metadata)
        given = [(i, doc.vector) for i, doc, _ in latest.values() if doc.vector is not None]
        unit = iter(unit_vectors([v for _, v in given], [i for i, _ in given], dim))
        pending: list[tuple[str, str, int, dict[str, Any], np.ndarray | None]] = []
        texts: list[str] = []
        s = self.settings
        for _, doc, metadata in latest.values():
            if doc.vector is not None:
                pending.append((doc.id, doc.text, 0, metadata, next(unit)))
                continue
            parts = chunk(doc.text, s.chunk_chars, s.chunk_overlap_chars)
            for n, part in enumerate(parts, start=1):
                pending.append((doc.id, part, n if len(parts) > 1 else 0, metadata, None))
                texts.append(part)
        embedded = iter(await self.embed(texts)) if texts else iter(())
        passages = []
        for doc_id, text, n, metadata, vector in pending:
            if vector is None:
                vector = np.asarray(next(embedded), np.float32)
            pid = f"{doc_id}#{n}" if n else doc_id
            passages.append(Passage(pid, doc_id, text, metadata, vector))
        return passages, list(latest)


def load_embedder(settings: KnowledgeSettings) -> TextEmbedder | None:
    """The configured embedding model, or None (logged) when it is not installed or not
    usable: the hub runs without it (blocking: call it in a thread)."""
    from konak.edge_models.settings import ModelSettings
    from konak.edge_models.store import ModelStore
    from konak.errors import KonakError
    from konak.hub.knowledge.embedder import Embedder

    # as `konak models` finds the store: the setting, then $KONAK_MODELS_DIR, then the default
    models_dir = ModelSettings.resolve(
        models_dir=str(settings.models_dir) if settings.models_dir else None,
        accept_licenses=(),
        environ=os.environ,
        config={},
    ).models_dir
    try:
        path = ModelStore(models_dir).path(settings.model)
        return Embedder.load(path, model_id=settings.model, int8=settings.int8)
    except (KonakError, OSError) as exc:
        logger.warning(
            "knowledge: no embedding model (%s); searching by text is unavailable until "
            "it is installed (konak models pull %s)",
            exc.message if isinstance(exc, KonakError) else exc,
            settings.model,
        )
        return None

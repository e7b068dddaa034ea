"""The knowledge tests' seams: both real backends (sqlite-vec files in tmp_path, and a
database of its own on the session's real PostgreSQL + pgvector) and a small deterministic
embedder for unit tests (the real model runs in tests/integration/knowledge)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from konak.hub.knowledge.service import KnowledgeService
from konak.hub.knowledge.settings import KnowledgeSettings
from konak.hub.knowledge.types import VectorBackend
from konak.hub.quotas import TenantQuota

BACKENDS = ["sqlite", "postgres"]
DIM = 384


class HashEmbedder:
    """Words hashed into 384 dimensions: texts sharing words are near, deterministically."""

    model_id = "all-minilm-l6-v2"
    dim = DIM

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()) or [""]:
                digest = hashlib.sha256(word.encode()).digest()
                out[row, int.from_bytes(digest[:4], "big") % DIM] += 1.0
            out[row] /= np.linalg.norm(out[row])
        return out


def settings_for(backend: str, tmp_path: Path, dsn: str | None) -> KnowledgeSettings:
    """Knowledge settings for one backend (small chunks so tests see several)."""
    if backend == "postgres":
        assert dsn is not None
        return KnowledgeSettings(
            backend="postgres", postgres_dsn=dsn, chunk_chars=200, chunk_overlap_chars=40
        )
    return KnowledgeSettings(
        directory=tmp_path / "knowledge", chunk_chars=200, chunk_overlap_chars=40
    )


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def dsn(backend_name: str, request: pytest.FixtureRequest) -> str | None:
    """A fresh PostgreSQL database when the backend is pgvector."""
    return request.getfixturevalue("postgres_dsn") if backend_name == "postgres" else None


@pytest.fixture
def quotas() -> dict[str, TenantQuota]:
    """Per-tenant quotas the test may change (default: unlimited)."""
    return {}


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def open_service(
    backend_name: str,
    dsn: str | None,
    tmp_path: Path,
    quotas: dict[str, TenantQuota],
) -> Iterator[Callable[..., object]]:
    """Open services on the test's backend (closed by the ``service`` fixture's owner)."""

    async def open_(embedder: HashEmbedder | None) -> KnowledgeService:
        return await KnowledgeService.open(
            settings_for(backend_name, tmp_path, dsn),
            quotas=lambda tenant: quotas.get(tenant, TenantQuota()),
            embedder=embedder,
        )

    return open_


@pytest.fixture
async def service(
    open_service: Callable[..., object], embedder: HashEmbedder
) -> AsyncIterator[KnowledgeService]:
    """The knowledge service on the test's backend, with the hashing embedder."""
    opened = await open_service(embedder)  # type: ignore[misc]
    assert isinstance(opened, KnowledgeService)
    yield opened
    await opened.close()


@pytest.fixture
def backend(backend_name: str, dsn: str | None, tmp_path: Path) -> Iterator[VectorBackend]:
    """The bare backend (blocking), for property tests."""
    from konak.hub.knowledge.service import open_backend

    opened = open_backend(settings_for(backend_name, tmp_path, dsn))
    yield opened
    opened.close()

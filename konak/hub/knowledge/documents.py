"""What the service accepts: tenant ids, documents (id, text, flat metadata, a vector) and
query vectors, each refused with one line naming the field (InvalidDocument)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from konak.hub.knowledge.filters import check_metadata, check_text
from konak.hub.knowledge.types import DocumentIn, InvalidDocument, KnowledgeError
from konak.protocol.topics import is_identifier

MAX_ID_CHARS: Final = 200
MAX_METADATA_KEYS: Final = 64


def check_tenant(tenant: str) -> None:
    """KnowledgeError unless ``tenant`` is a valid tenant id."""
    if not is_identifier(tenant):
        raise KnowledgeError(f"invalid tenant id {str(tenant)[:70]!r}")


def check_field(text: object, what: str) -> None:
    """InvalidDocument unless ``text`` is a string every backend stores."""
    if not isinstance(text, str):
        raise InvalidDocument(f"{what}: must be a string")
    try:
        check_text(text, what)
    except ValueError as exc:
        raise InvalidDocument(str(exc)) from None


def check_document(doc: DocumentIn, i: int, dim: int) -> dict[str, Any]:
    """The document's metadata, validated (InvalidDocument names the field)."""
    where = f"documents[{i}]"
    if not isinstance(doc.id, str) or not 1 <= len(doc.id) <= MAX_ID_CHARS:
        raise InvalidDocument(f"{where}.id: must be 1 to {MAX_ID_CHARS} characters")
    if "#" in doc.id:
        raise InvalidDocument(f"{where}.id: '#' is reserved for passage numbers")
    check_field(doc.id, f"{where}.id")
    check_field(doc.text, f"{where}.text")
    if doc.vector is None and not doc.text.strip():
        raise InvalidDocument(f"{where}.text: empty (give text, or a vector with it)")
    if not isinstance(doc.metadata, Mapping) or len(doc.metadata) > MAX_METADATA_KEYS:
        raise InvalidDocument(f"{where}.metadata: an object of at most {MAX_METADATA_KEYS} keys")
    try:
        metadata = check_metadata(doc.metadata, f"{where}.metadata")
    except ValueError as exc:
        raise InvalidDocument(str(exc)) from None
    if doc.vector is not None and len(doc.vector) != dim:
        raise InvalidDocument(
            f"{where}.vector: {len(doc.vector)} dimensions, the collection has {dim}"
        )
    return dict(metadata)


def query_vector(raw: Sequence[float], what: str) -> np.ndarray:
    """A float32 unit vector (InvalidDocument for a non-numeric, infinite or zero one)."""
    try:
        with np.errstate(over="ignore"):  # beyond float32: infinite, refused below
            vec = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidDocument(f"{what}: must be a list of numbers") from exc
    if vec.ndim != 1 or vec.size == 0:
        raise InvalidDocument(f"{what}: must be a non-empty list of numbers")
    return np.asarray(unit_vectors([vec], [0], vec.size, what=lambda _: what)[0], np.float32)


def unit_vectors(
    vectors: Sequence[Any],
    indexes: Sequence[int],
    dim: int,
    what: Callable[[int], str] = lambda i: f"documents[{i}].vector",
) -> np.ndarray:
    """Given vectors (each of ``dim``) as float32 unit rows, checked together; a bad one is
    InvalidDocument naming it by its index."""
    if not vectors:
        return np.zeros((0, dim), dtype=np.float32)
    try:
        with np.errstate(over="ignore"):  # beyond float32: infinite, refused below
            matrix = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), dim)
    except (TypeError, ValueError):
        for vector, i in zip(vectors, indexes, strict=True):
            try:
                with np.errstate(over="ignore"):
                    np.asarray(vector, dtype=np.float32).reshape(dim)
            except (TypeError, ValueError) as exc:
                raise InvalidDocument(f"{what(i)}: must be a list of numbers") from exc
        raise
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.linalg.norm(matrix, axis=1)
    finite = np.asarray(np.isfinite(matrix).all(axis=1), dtype=bool)
    bad = np.flatnonzero(~finite | (norms == 0) | ~np.isfinite(norms))
    if bad.size:
        row = int(bad[0])
        problem = "numbers must be finite" if not finite[row] else "must not be all zeros"
        raise InvalidDocument(f"{what(indexes[row])}: {problem}")
    unit: np.ndarray = (matrix / norms[:, None]).astype(np.float32)
    return unit

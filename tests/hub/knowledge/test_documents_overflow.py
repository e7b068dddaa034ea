"""Vectors beyond float32 are refused as infinite, with no warning (a warning is a 500 where
warnings are errors)."""

from __future__ import annotations

import pytest

from konak.hub.knowledge.documents import query_vector, unit_vectors
from konak.hub.knowledge.types import InvalidDocument


def test_a_component_beyond_float32_is_refused_as_not_finite() -> None:
    with pytest.raises(InvalidDocument, match=r"vector: numbers must be finite"):
        query_vector([1e300, 0.5, 0.5], "vector")
    with pytest.raises(InvalidDocument, match=r"documents\[3\].vector: numbers must be finite"):
        unit_vectors([[0.1, -1e39]], [3], 2)

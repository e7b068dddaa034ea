"""The knowledge store benchmark: its figures and its table."""

from __future__ import annotations

from pathlib import Path

from konak.bench import vectors
from konak.hub.knowledge.settings import KnowledgeSettings


async def test_a_small_run_reports_import_rate_and_search_percentiles(tmp_path: Path) -> None:
    figures = await vectors._measure(KnowledgeSettings(directory=tmp_path), 300)

    assert figures["vectors"] == 300
    assert figures["import_per_second"] > 0
    assert set(figures["search"]) == set(vectors.FILTERS)
    assert all(0 < f["p50_ms"] <= f["p95_ms"] for f in figures["search"].values())


def test_the_table_puts_backends_side_by_side_with_the_goals() -> None:
    search = {name: {"p50_ms": 5.0, "p95_ms": 9.0} for name in vectors.FILTERS}
    results = {
        "dim": 384,
        "count": 100_000,
        "queries": 50,
        "backends": {
            "sqlite-vec": {
                "vectors": 100_000,
                "import_per_second": 40_000,
                "search": search,
                "stored_mib": 150.0,
            },
            "pgvector": {"error": "ImportError: no pgserver"},
        },
    }

    text = "\n".join(vectors.table(results))

    assert "| figure | goal | sqlite-vec | pgvector |" in text
    assert "| import, vectors given (vectors/s) | ≥ 30,000 | 40,000 | n/a |" in text
    assert "| search p50 / p95 (ms), filter: equality (1 in 10) | ≤ 80 | 5.0 / 9.0 | n/a |" in text
    assert "pgvector did not run: ImportError: no pgserver" in text

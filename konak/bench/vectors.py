"""Knowledge store goals: 100,000 x 384 vectors in one tenant, search k=10 with and without a
metadata filter (p50) and import with vectors given (vectors/s), sqlite-vec and pgvector
side by side, each through ``KnowledgeService`` as the API and importer use it."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import numpy as np

from konak.hub.knowledge.service import KnowledgeService
from konak.hub.knowledge.settings import KnowledgeSettings
from konak.hub.knowledge.types import DocumentIn
from konak.hub.quotas import TenantQuota

DIM: Final = 384
FULL_VECTORS: Final = 100_000
QUICK_VECTORS: Final = 10_000
BATCH: Final = 1000  # documents per upsert, as the importer sends them
QUERIES: Final = 50
GOAL_FILTERED_P50_MS: Final = 80.0
GOAL_IMPORT_PER_SECOND: Final = 30_000.0
FILTERS: Final[dict[str, dict[str, Any] | None]] = {
    "none": None,
    "equality (1 in 10)": {"category": "c3"},
    "range (1 in 5)": {"n": {"$gte": 10, "$lt": 30}},
}


def _documents(count: int, rng: np.random.Generator) -> Iterator[list[DocumentIn]]:
    for start in range(0, count, BATCH):
        vectors = rng.standard_normal((min(BATCH, count - start), DIM), dtype=np.float32)
        yield [
            DocumentIn(
                f"d{start + i}",
                f"passage {start + i}",
                {"category": f"c{(start + i) % 10}", "n": (start + i) % 100},
                vector,
            )
            for i, vector in enumerate(vectors)
        ]


async def _measure(settings: KnowledgeSettings, count: int) -> dict[str, Any]:
    service = await KnowledgeService.open(
        settings, quotas=lambda tenant: TenantQuota(), embedder=None
    )
    try:
        await service.create_collection("bench", "vectors")
        rng = np.random.default_rng(17)
        batches = list(_documents(count, rng))  # made before the clock starts: parsing is C's
        started = time.perf_counter()
        async with service.transaction("bench", "vectors") as writer:
            for batch in batches:
                await writer.upsert(batch)
        import_seconds = time.perf_counter() - started
        queries = rng.standard_normal((QUERIES, DIM), dtype=np.float32)
        search: dict[str, dict[str, float]] = {}
        for name, where in FILTERS.items():
            await service.search("bench", ["vectors"], vector=list(queries[0]), filter=where)
            times = []
            for query in queries:
                t = time.perf_counter()
                await service.search("bench", ["vectors"], vector=list(query), k=10, filter=where)
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            search[name] = {
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
            }
        usage = await service.usage("bench")
        return {
            "vectors": usage.vectors,
            "import_per_second": round(count / import_seconds),
            "search": search,
            "stored_mib": round(usage.bytes / 2**20, 1),
        }
    finally:
        await service.close()


@contextlib.contextmanager
def _postgres() -> Iterator[str]:
    """A throw-away PostgreSQL + pgvector (pgserver, a dev dependency)."""
    data = Path(tempfile.mkdtemp(prefix="konak-bench-postgres-"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            server = pgserver.get_server(data, cleanup_mode="stop")  # type: ignore[attr-defined]
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(data, ignore_errors=True)


def run(*, quick: bool) -> dict[str, Any]:
    """Both backends' figures (a backend that cannot run here reports why)."""
    count = QUICK_VECTORS if quick else FULL_VECTORS
    results: dict[str, Any] = {"dim": DIM, "count": count, "queries": QUERIES, "backends": {}}
    with tempfile.TemporaryDirectory(prefix="konak-bench-vectors-") as tmp:
        print(f"vectors: sqlite-vec, {count} x {DIM} ...", flush=True)
        sqlite = KnowledgeSettings(directory=Path(tmp))
        results["backends"]["sqlite-vec"] = asyncio.run(_measure(sqlite, count))
    print(f"vectors: pgvector, {count} x {DIM} ...", flush=True)
    try:
        with _postgres() as dsn:
            postgres = KnowledgeSettings(backend="postgres", postgres_dsn=dsn)
            results["backends"]["pgvector"] = asyncio.run(_measure(postgres, count))
    except (ImportError, OSError, RuntimeError) as exc:  # no pgserver, or it cannot start
        results["backends"]["pgvector"] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def table(results: dict[str, Any]) -> list[str]:
    """The goals table (markdown lines)."""
    backends = results["backends"]
    names = list(backends)
    lines = [
        f"{results['count']:,} x {results['dim']} vectors in one tenant, k=10, "
        f"{results['queries']} random queries; through KnowledgeService.",
        "",
        "| figure | goal | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]

    def cell(name: str, get: Any) -> str:
        figures = backends[name]
        return "n/a" if "error" in figures else str(get(figures))

    lines.append(
        f"| import, vectors given (vectors/s) | ≥ {GOAL_IMPORT_PER_SECOND:,.0f} | "
        + " | ".join(cell(n, lambda f: f"{f['import_per_second']:,}") for n in names)
        + " |"
    )
    for filter_name in FILTERS:
        goal = f"≤ {GOAL_FILTERED_P50_MS:g}" if filter_name != "none" else ""
        lines.append(
            f"| search p50 / p95 (ms), filter: {filter_name} | {goal} | "
            + " | ".join(
                cell(
                    n,
                    lambda f, k=filter_name: (
                        f"{f['search'][k]['p50_ms']} / {f['search'][k]['p95_ms']}"
                    ),
                )
                for n in names
            )
            + " |"
        )
    lines.append(
        "| stored (MiB, as the quota counts) | | "
        + " | ".join(cell(n, lambda f: f["stored_mib"]) for n in names)
        + " |"
    )
    for name in names:
        if "error" in backends[name]:
            lines.append(f"\n{name} did not run: {backends[name]['error']}")
    return lines


if __name__ == "__main__":
    import sys

    outcome = run(quick="--quick" in sys.argv)
    print("\n".join(table(outcome)))

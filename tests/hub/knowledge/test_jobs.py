"""The job runner on the real sqlite-vec service (vectors given, no model): imports are all or
nothing, idempotent, cancellable, bounded; a restart marks interrupted jobs failed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from konak.hub.knowledge.formats import InvalidImport
from konak.hub.knowledge.job_store import (
    ImportTooLarge,
    Job,
    JobCancelled,
    JobFinished,
    JobNotFound,
    JobStore,
    TooManyJobs,
)
from konak.hub.knowledge.jobs import JobRunner
from konak.hub.knowledge.service import KnowledgeService
from konak.hub.knowledge.types import Passage, QuotaExceeded
from konak.hub.quotas import TenantQuota
from tests.hub.knowledge.conftest import settings_for

DIM = 384
LIMIT = 1 << 30


def vector(i: int) -> list[float]:
    v = np.zeros(DIM)
    v[i % DIM] = 1.0
    v[(i * 7 + 1) % DIM] += 0.5
    return [float(x) for x in v]


def jsonl(n: int, start: int = 0, **extra: Any) -> bytes:
    return b"".join(
        json.dumps(
            {"id": f"d{i}", "text": f"doc {i}", "metadata": {"i": i}, "vector": vector(i)} | extra
        ).encode()
        + b"\n"
        for i in range(start, start + n)
    )


async def body(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def assert_same(got: list[Passage], expected: list[Passage]) -> None:
    """The same passages: ids, texts, metadata and (float32-close) vectors."""
    assert [(p.id, p.text, p.metadata) for p in got] == [
        (p.id, p.text, p.metadata) for p in expected
    ]
    assert all(np.allclose(a.vector, b.vector) for a, b in zip(got, expected, strict=True))


class Gate:
    """An upload that sends its first part, then waits until opened."""

    def __init__(self, first: bytes, rest: bytes = b"") -> None:
        self.first, self.rest = first, rest
        self.sent = asyncio.Event()
        self.opened = asyncio.Event()

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.first
        self.sent.set()
        await self.opened.wait()
        yield self.rest


@pytest.fixture
async def service(
    tmp_path: Path, backend_name: str, dsn: str | None
) -> AsyncIterator[KnowledgeService]:
    """The real service on each backend (conftest: sqlite-vec, then PostgreSQL + pgvector)."""
    quota = {"acme": TenantQuota(max_vectors=50)}
    opened = await KnowledgeService.open(
        settings_for(backend_name, tmp_path, dsn),
        quotas=lambda tenant: quota.get(tenant, TenantQuota()),
        embedder=None,
    )
    for tenant in ("home", "acme"):
        await opened.create_collection(tenant, "notes")
    yield opened
    await opened.close()


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, tenant: str, view: Mapping[str, Any]) -> None:
        self.seen.append((tenant, dict(view)))


@pytest.fixture
async def events() -> Events:
    return Events()


@pytest.fixture
async def runner(tmp_path: Path, events: Events) -> AsyncIterator[JobRunner]:
    started = JobRunner(JobStore(tmp_path / "jobs.sqlite3"), tmp_path / "spool", events)
    started.start()
    yield started
    await started.close()


async def run_import(
    runner: JobRunner, service: KnowledgeService, data: bytes, fmt: str = "jsonl", **kw: Any
) -> Any:
    kw = {"max_bytes": LIMIT, "jobs_per_tenant": 2} | kw
    return await runner.run_import(service, "home", "notes", fmt, body(data), **kw)  # type: ignore[arg-type]


async def test_an_import_writes_every_document_and_reports_its_progress(
    runner: JobRunner, service: KnowledgeService, events: Events, tmp_path: Path
) -> None:
    job = await run_import(runner, service, jsonl(1200))

    info = await service.get_collection("home", "notes")
    assert (job.state, job.documents, job.written, job.passages) == ("succeeded", 1200, 1200, 1200)
    assert (job.lines, job.bytes) == (1200, len(jsonl(1200)))
    assert (info.documents, info.passages) == (1200, 1200)
    assert runner.get("home", job.job_id)["state"] == "succeeded"
    states = [(t, v["state"], v["phase"]) for t, v in events.seen]
    assert states[0] == ("home", "running", "receiving")
    assert ("home", "running", "writing") in states
    assert states[-1] == ("home", "succeeded", "writing")
    assert list((tmp_path / "spool").iterdir()) == []  # the staged copy is gone


async def test_importing_the_same_file_again_changes_nothing(
    runner: JobRunner, service: KnowledgeService
) -> None:
    await run_import(runner, service, jsonl(300))
    first = await service.get_document("home", "notes", "d7")
    await run_import(runner, service, jsonl(300))

    info = await service.get_collection("home", "notes")
    assert (info.documents, info.passages) == (300, 300)
    again = await service.get_document("home", "notes", "d7")
    assert_same(again, first)


async def test_a_corrupt_line_names_its_number_and_nothing_is_half_imported(
    runner: JobRunner, service: KnowledgeService
) -> None:
    await run_import(runner, service, jsonl(10))
    data = jsonl(700, start=10) + b'{"id": "broken", "text": \n' + jsonl(5, start=710)

    with pytest.raises(InvalidImport) as caught:
        await run_import(runner, service, data)

    assert caught.value.line == 701
    job = runner.list("home")[0]
    assert job["state"] == "failed"
    assert job["error"] == {
        "code": "invalid_import",
        "message": caught.value.message,
        "line": 701,
    }
    assert (await service.get_collection("home", "notes")).documents == 10


async def test_an_import_over_the_quota_is_refused_and_writes_nothing(
    runner: JobRunner, service: KnowledgeService
) -> None:
    with pytest.raises(QuotaExceeded):
        await runner.run_import(
            service, "acme", "notes", "jsonl", body(jsonl(80)), max_bytes=LIMIT, jobs_per_tenant=2
        )

    assert (await service.get_collection("acme", "notes")).documents == 0
    assert runner.list("acme")[0]["error"]["code"] == "quota_exceeded"


async def test_an_upload_over_max_import_bytes_is_refused_and_writes_nothing(
    runner: JobRunner, service: KnowledgeService
) -> None:
    with pytest.raises(ImportTooLarge):
        await run_import(runner, service, jsonl(50), max_bytes=10_000)

    assert (await service.get_collection("home", "notes")).documents == 0


async def test_a_cancelled_import_writes_nothing_and_ends_cancelled(
    runner: JobRunner, service: KnowledgeService
) -> None:
    gate = Gate(jsonl(100), jsonl(100, start=100))
    importing = asyncio.create_task(
        runner.run_import(
            service, "home", "notes", "jsonl", gate.chunks(), max_bytes=LIMIT, jobs_per_tenant=2
        )
    )
    await asyncio.wait_for(gate.sent.wait(), 10)
    job_id = runner.list("home")[0]["job_id"]

    runner.cancel("home", job_id)
    with pytest.raises(JobCancelled):
        await asyncio.wait_for(importing, 10)

    assert runner.get("home", job_id)["state"] == "cancelled"
    assert (await service.get_collection("home", "notes")).documents == 0
    with pytest.raises(JobFinished):
        runner.cancel("home", job_id)


async def test_a_tenant_runs_at_most_jobs_per_tenant_and_another_tenant_is_not_held_up(
    runner: JobRunner, service: KnowledgeService
) -> None:
    gate = Gate(jsonl(3))
    held = asyncio.create_task(
        runner.run_import(
            service, "home", "notes", "jsonl", gate.chunks(), max_bytes=LIMIT, jobs_per_tenant=1
        )
    )
    await asyncio.wait_for(gate.sent.wait(), 10)

    with pytest.raises(TooManyJobs):
        await run_import(runner, service, jsonl(3), jobs_per_tenant=1)
    other = await runner.run_import(
        service, "acme", "notes", "jsonl", body(jsonl(3)), max_bytes=LIMIT, jobs_per_tenant=1
    )
    gate.opened.set()
    done = await asyncio.wait_for(held, 10)

    assert (other.state, done.state, done.documents) == ("succeeded", "succeeded", 3)


async def test_another_tenants_job_cannot_be_read_or_cancelled(
    runner: JobRunner, service: KnowledgeService
) -> None:
    job = await run_import(runner, service, jsonl(2))

    with pytest.raises(JobNotFound):
        runner.get("acme", job.job_id)
    with pytest.raises(JobNotFound):
        runner.cancel("acme", job.job_id)
    assert runner.list("acme") == []


async def test_a_restart_marks_the_jobs_it_interrupted_failed(tmp_path: Path) -> None:
    # What a hub that died mid-import leaves: its job recorded as running, a staged file.
    dead = JobStore(tmp_path / "jobs.sqlite3")
    dead.save("home", Job("0123abcd", "home", "import", "notes", "jsonl", 1.0).view())
    dead.close()
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "home.0123abcd.jsonl").write_text("{}\n")

    restarted = JobRunner(JobStore(tmp_path / "jobs.sqlite3"), tmp_path / "spool")
    restarted.start()

    view = restarted.get("home", "0123abcd")
    assert (view["state"], view["error"]["code"]) == ("failed", "job_interrupted")
    assert list((tmp_path / "spool").iterdir()) == []
    await restarted.close()


async def test_an_export_streams_every_passage_and_reimports_to_the_same_collection(
    runner: JobRunner, service: KnowledgeService
) -> None:
    await run_import(runner, service, jsonl(1100))
    await service.create_collection("home", "copy")
    sent: list[bytes] = []

    async def write(data: bytes) -> None:
        sent.append(data)

    job = await runner.run_export(service, "home", "notes", "jsonl", write, jobs_per_tenant=2)
    copied = await runner.run_import(
        service, "home", "copy", "jsonl", body(b"".join(sent)), max_bytes=LIMIT, jobs_per_tenant=2
    )

    assert (job.state, job.documents, job.bytes) == ("succeeded", 1100, sum(map(len, sent)))
    assert copied.documents == 1100
    original = await service.get_document("home", "notes", "d42")
    again = await service.get_document("home", "copy", "d42")
    assert_same(again, original)


async def test_a_cancelled_export_stops_writing_and_ends_cancelled(
    runner: JobRunner, service: KnowledgeService
) -> None:
    await run_import(runner, service, jsonl(1200))
    wrote, blocked = asyncio.Event(), asyncio.Event()

    async def write(data: bytes) -> None:
        wrote.set()
        await blocked.wait()  # a client that stopped reading

    exporting = asyncio.create_task(
        runner.run_export(service, "home", "notes", "jsonl", write, jobs_per_tenant=2)
    )
    await asyncio.wait_for(wrote.wait(), 10)
    job_id = runner.list("home")[0]["job_id"]

    runner.cancel("home", job_id)
    with pytest.raises(JobCancelled):
        await asyncio.wait_for(exporting, 10)

    view = runner.get("home", job_id)
    assert (view["kind"], view["state"], view["documents"]) == ("export", "cancelled", 0)

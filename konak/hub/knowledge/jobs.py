"""Bulk import and export of a tenant's knowledge as jobs: asyncio tasks a tenant may run
``jobs_per_tenant`` of at once, each with its state and progress in memory, on the tenant's
event stream, and in a small SQLite file (so a restart finds the jobs it interrupted and
marks them ``failed``).

An import reads its upload line by line as it arrives and stages every valid document in a
spool file (never the whole upload in memory); a bad line ends it with the line's number
before anything is written. Then one ``transaction()`` of the service upserts the staged
documents: all of them or, on any error or a cancel, none. The transaction so lasts as long
as the hub needs to write (and embed), never as long as a slow client takes to upload.
Re-importing a file upserts the same ids: idempotent.

An export writes each passage (with its vector) as it reads them, batch by batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
)
from pathlib import Path
from typing import Any, Final, TypeVar

from konak.hub.knowledge.formats import (
    Format,
    InvalidImport,
    csv_header,
    csv_lines,
    jsonl_lines,
    lines,
    read_documents,
)
from konak.hub.knowledge.job_store import (
    INTERRUPTED,
    MAX_JOBS_PAGE,
    ImportTooLarge,
    Job,
    JobCancelled,
    JobError,
    JobFinished,
    JobInterrupted,
    JobKind,
    JobNotFound,
    JobState,
    JobStore,
    SpoolFailed,
    TooManyJobs,
)
from konak.hub.knowledge.service import KnowledgeService
from konak.hub.knowledge.types import DocumentIn, KnowledgeError

logger = logging.getLogger(__name__)
T = TypeVar("T")

WRITE_BATCH_DOCUMENTS: Final = 500  # documents per upsert inside the import's transaction
EXPORT_BATCH_PASSAGES: Final = 500
PROGRESS_SECONDS: Final = 0.5  # at most this often a progress event per job


Publish = Callable[[str, Mapping[str, Any]], None]
Write = Callable[[bytes], Awaitable[None]]


class JobRunner:
    """Runs the tenants' import and export jobs; one per hub process."""

    def __init__(
        self,
        store: JobStore,
        spool_dir: Path,
        publish: Publish | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._spool_dir = spool_dir
        self._publish = publish
        self._clock = clock
        self._running: dict[tuple[str, str], Job] = {}
        self._stopping = False

    def start(self) -> None:
        """Fail the jobs a stopped hub left running and drop their spool files."""
        failed = self._store.fail_running(self._clock())
        if failed:
            logger.warning("%d knowledge job(s) were interrupted by a stop: marked failed", failed)
        self._spool_dir.mkdir(parents=True, exist_ok=True)
        for stale in self._spool_dir.glob("*.jsonl"):
            stale.unlink(missing_ok=True)

    async def stop(self) -> None:
        """Cancel every running job and wait for each to end (imports write nothing)."""
        self._stopping = True
        tasks = [job.task for job in self._running.values() if job.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop the jobs and close the jobs' database."""
        await self.stop()
        self._store.close()

    async def wait(self, tenant: str, job_id: str, timeout_seconds: float) -> None:
        """Wait until a job has ended (at most ``timeout_seconds``)."""
        job = self._running.get((tenant, job_id))
        if job is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.ended.wait(), timeout_seconds)

    def running(self, tenant: str) -> int:
        """How many jobs ``tenant`` runs now."""
        return sum(1 for t, _ in self._running if t == tenant)

    def get(self, tenant: str, job_id: str) -> dict[str, Any]:
        """A job of ``tenant`` (running or recorded)."""
        job = self._running.get((tenant, job_id))
        if job is not None:
            return job.view()
        view = self._store.get(tenant, job_id)
        if view is None:
            raise JobNotFound(f"no job {job_id!r}")
        return view

    def list(self, tenant: str, limit: int = MAX_JOBS_PAGE) -> list[dict[str, Any]]:
        """The tenant's jobs, newest first (running ones with their live progress)."""
        views = self._store.list(tenant, limit)
        return [
            self._running[(tenant, v["job_id"])].view()
            if (tenant, v["job_id"]) in self._running
            else v
            for v in views
        ]

    def cancel(self, tenant: str, job_id: str) -> dict[str, Any]:
        """Ask a running job to stop; an import then writes nothing."""
        job = self._running.get((tenant, job_id))
        if job is None:
            self.get(tenant, job_id)  # JobNotFound when there is no such job
            raise JobFinished(f"job {job_id} has ended already")
        job.cancel_requested = True
        if job.task is not None:
            job.task.cancel()
        return job.view()

    def _admit(
        self, tenant: str, kind: JobKind, collection: str, fmt: Format, jobs_per_tenant: int
    ) -> Job:
        if self.running(tenant) >= jobs_per_tenant:
            raise TooManyJobs(
                f"{jobs_per_tenant} knowledge job(s) are running for this tenant; wait for one "
                "to end or cancel it"
            )
        job = Job(secrets.token_hex(8), tenant, kind, collection, fmt, self._clock())
        job.phase = "receiving" if kind == "import" else "sending"
        self._running[(tenant, job.job_id)] = job
        self._store.save(tenant, job.view())
        self._event(job, force=True)
        return job

    def _event(self, job: Job, *, force: bool = False) -> None:
        now = time.monotonic()
        if self._publish is None or (not force and now - job.last_event < PROGRESS_SECONDS):
            return
        job.last_event = now
        self._publish(job.tenant, job.view())

    def _finish(self, job: Job, state: JobState, error: KnowledgeError | None = None) -> None:
        job.state, job.finished_at = state, self._clock()
        if error is not None:
            job.error = {"code": error.code, "message": error.message}
            if isinstance(error, InvalidImport):
                job.error["line"] = error.line
        self._running.pop((job.tenant, job.job_id), None)
        self._store.save(job.tenant, job.view())
        self._event(job, force=True)
        job.ended.set()

    async def _supervise(self, job: Job, work: Coroutine[Any, Any, None]) -> Job:
        """Run ``work`` as the job's task; its end (success, error, cancel) is recorded."""
        job.task = asyncio.create_task(work, name=f"knowledge-{job.kind}-{job.job_id}")
        try:
            await job.task
        except asyncio.CancelledError:
            error: JobError
            if job.cancel_requested:
                error = JobCancelled(f"job {job.job_id} was cancelled")
                self._finish(job, "cancelled")
            elif self._stopping:
                error = JobInterrupted(INTERRUPTED)
                self._finish(job, "failed", error)
            else:  # the request that ran it ended: its client left
                error = JobError("the client left before the job ended", code="client_gone")
                self._finish(job, "failed", error)
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the caller itself is cancelled
            raise error from None
        except KnowledgeError as exc:
            self._finish(job, "failed", exc)
            raise
        except ConnectionError as exc:
            gone = JobError(f"the client's connection ended: {exc}", code="client_gone")
            self._finish(job, "failed", gone)
            raise gone from exc
        except OSError as exc:
            error = SpoolFailed(f"the hub could not stage the upload: {exc.strerror or exc}")
            self._finish(job, "failed", error)
            raise error from exc
        except BaseException:
            self._finish(job, "failed", JobError("the job failed", code="job_failed"))
            raise
        self._finish(job, "succeeded")
        return job

    async def run_import(
        self,
        service: KnowledgeService,
        tenant: str,
        collection: str,
        fmt: Format,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int,
        jobs_per_tenant: int,
    ) -> Job:
        """Import an upload into ``collection``: every document or none."""
        await service.get_collection(tenant, collection)  # CollectionNotFound before reading
        job = self._admit(tenant, "import", collection, fmt, jobs_per_tenant)
        spool = self._spool_dir / f"{tenant}.{job.job_id}.jsonl"
        try:
            return await self._supervise(job, self._import(job, service, chunks, spool, max_bytes))
        finally:
            spool.unlink(missing_ok=True)

    async def _counted(
        self, job: Job, chunks: AsyncIterable[bytes], max_bytes: int
    ) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            job.bytes += len(chunk)
            if job.bytes > max_bytes:
                raise ImportTooLarge(f"the upload is over {max_bytes} bytes (max_import_bytes)")
            yield chunk

    async def _numbered(
        self, job: Job, chunks: AsyncIterable[bytes], max_bytes: int
    ) -> AsyncIterator[tuple[int, bytes]]:
        async for number, line in lines(self._counted(job, chunks, max_bytes)):
            job.lines = number
            yield number, line

    async def _import(
        self,
        job: Job,
        service: KnowledgeService,
        chunks: AsyncIterable[bytes],
        spool: Path,
        max_bytes: int,
    ) -> None:
        with spool.open("w", encoding="utf-8") as staged:
            async for record in read_documents(job.format, self._numbered(job, chunks, max_bytes)):
                staged.write(record.model_dump_json(exclude_defaults=True) + "\n")
                job.documents += 1
                self._event(job)
        job.phase = "writing"
        self._store.save(job.tenant, job.view())
        self._event(job, force=True)
        if job.documents == 0:
            return
        async with service.transaction(job.tenant, job.collection) as writer:
            for batch in _batches(spool):
                job.passages += await finishing(writer.upsert(batch))
                job.written += len(batch)
                self._event(job)

    async def run_export(
        self,
        service: KnowledgeService,
        tenant: str,
        collection: str,
        fmt: Format,
        write: Write,
        *,
        jobs_per_tenant: int,
        started: Callable[[Job], Awaitable[None]] | None = None,
    ) -> Job:
        """Write every passage of ``collection`` through ``write`` (``started`` is told the
        job first: an HTTP answer starts its stream there)."""
        await service.get_collection(tenant, collection)
        job = self._admit(tenant, "export", collection, fmt, jobs_per_tenant)
        return await self._supervise(job, self._export(job, service, write, started))

    async def _export(
        self,
        job: Job,
        service: KnowledgeService,
        write: Write,
        started: Callable[[Job], Awaitable[None]] | None,
    ) -> None:
        if started is not None:
            await started(job)
        if job.format == "csv":
            await self._send(job, write, csv_header())
        encode = csv_lines if job.format == "csv" else jsonl_lines
        batches = service.export(job.tenant, job.collection, EXPORT_BATCH_PASSAGES)
        try:
            while True:
                try:
                    batch = await finishing(anext(batches))
                except StopAsyncIteration:
                    break
                await self._send(job, write, encode(batch))
                job.documents += len(batch)
                self._event(job)
        finally:
            await batches.aclose()  # type: ignore[attr-defined]

    @staticmethod
    async def _send(job: Job, write: Write, text: str) -> None:
        data = text.encode()
        await write(data)
        job.bytes += len(data)


async def finishing(step: Awaitable[T]) -> T:
    """Await ``step``; when cancelled, let it finish first: a backend call running in a
    thread cannot be stopped, and its store must not be rolled back or closed under it."""
    inner = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError:
        await asyncio.wait({inner})
        if not inner.cancelled():
            inner.exception()  # seen: its outcome no longer matters
        raise


def _batches(spool: Path) -> Iterator[list[DocumentIn]]:
    """The staged documents, ``WRITE_BATCH_DOCUMENTS`` at a time."""
    batch: list[DocumentIn] = []
    with spool.open(encoding="utf-8") as staged:
        for line in staged:
            raw = json.loads(line)
            batch.append(
                DocumentIn(
                    id=raw["id"],
                    text=raw["text"],
                    metadata=raw.get("metadata", {}),
                    vector=raw.get("vector"),
                )
            )
            if len(batch) >= WRITE_BATCH_DOCUMENTS:
                yield batch
                batch = []
    if batch:
        yield batch

"""Bulk import and export of the tenant's knowledge over the API, as jobs run by
``konak.hub.knowledge.jobs``. An import is the request's body itself, read line by line as it
arrives (JSON lines or CSV, chosen by its Content-Type); its answer comes when the job has
ended. An export is streamed back as it is read. Both are listed, followed on the event
stream, and cancelled from another request."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from konak.hub.api.errors import TooLarge, Unsupported
from konak.hub.api.fleet import tenant_of
from konak.hub.api.http import client_ip, declare, identity_of, note
from konak.hub.api.knowledge import C, T, collection_of, mapped, noted_collection, service_of
from konak.hub.api.knowledge_schemas import JobsQuery
from konak.hub.api.openapi import ApiRoute
from konak.hub.api.schemas import parse_query
from konak.hub.events import knowledge_job
from konak.hub.keys import AUTH, EVENTS, SETTINGS
from konak.hub.knowledge.formats import Format
from konak.hub.knowledge.job_store import Job, JobStore, UploadBroken
from konak.hub.knowledge.jobs import JobRunner
from konak.hub.knowledge.types import KnowledgeError
from konak.hub.security.errors import NotEnabled
from konak.hub.security.rbac import Action

JOBS: Final = web.AppKey("konak_knowledge_jobs", JobRunner)
UPLOAD_CHUNK_BYTES: Final = 64 * 1024
CANCEL_WAIT_SECONDS: Final = 10.0  # a cancelled job rolls back; the answer shows its end
JSONL_TYPES: Final = ("application/x-ndjson", "application/jsonl", "application/json-lines")
UPLOAD_TYPES: Final = (*JSONL_TYPES[:1], "text/csv")  # what the OpenAPI document lists
EXPORT_TYPES: Final[dict[Format, str]] = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}


def runner_of(request: web.Request) -> JobRunner:
    runner = request.app.get(JOBS)
    if runner is None:
        raise NotEnabled("knowledge is not enabled on this hub", code="knowledge_disabled")
    return runner


def _upload_format(request: web.Request) -> Format:
    media = request.content_type
    if media in JSONL_TYPES:
        return "jsonl"
    if media == "text/csv":
        return "csv"
    raise Unsupported("send the upload as application/x-ndjson (JSON lines) or text/csv")


async def _upload(request: web.Request) -> AsyncIterator[bytes]:
    """The request's body as it arrives."""
    try:
        async for chunk in request.content.iter_chunked(UPLOAD_CHUNK_BYTES):
            yield chunk
    except (ConnectionError, ClientPayloadError, HttpProcessingError) as exc:
        raise UploadBroken(f"the upload broke off: {exc}") from exc


@declare(Action.KNOWLEDGE_IMPORT)
@mapped
async def import_documents(request: web.Request) -> web.Response:
    """Import the body (JSON lines or CSV) into a collection as a job: every document or,
    on a bad line, a cancel or any error, none; answers when the job has ended."""
    service, tenant = service_of(request)
    runner = runner_of(request)
    name = noted_collection(request)
    fmt = _upload_format(request)
    settings = request.app[SETTINGS].current.knowledge
    if request.content_length is not None and request.content_length > settings.max_import_bytes:
        raise TooLarge(f"the upload is over {settings.max_import_bytes} bytes (max_import_bytes)")
    job = await runner.run_import(
        service,
        tenant,
        name,
        fmt,
        _upload(request),
        max_bytes=settings.max_import_bytes,
        jobs_per_tenant=settings.jobs_per_tenant,
    )
    return web.json_response(job.view())


async def _export(request: web.Request, fmt: Format) -> web.StreamResponse:
    service, tenant = service_of(request)
    runner = runner_of(request)
    name = collection_of(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": EXPORT_TYPES[fmt],
            "Content-Disposition": f'attachment; filename="{name}.{fmt}"',
        }
    )

    async def started(job: Job) -> None:
        response.headers["X-Konak-Job"] = job.job_id
        _audit_export(request, tenant, name, job)
        await response.prepare(request)

    try:
        await runner.run_export(
            service,
            tenant,
            name,
            fmt,
            response.write,
            jobs_per_tenant=request.app[SETTINGS].current.knowledge.jobs_per_tenant,
            started=started,
        )
    except KnowledgeError:
        if not response.prepared:
            raise
        # The stream has begun: end it without its last chunk, so the client can tell it is
        # incomplete (a cancelled or interrupted export).
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


def _audit_export(request: web.Request, tenant: str, name: str, job: Job) -> None:
    """An export hands out a whole collection: recorded like a write (the guard audits only
    mutating methods)."""
    request.app[AUTH].audit.record(
        tenant_id=tenant,
        actor=identity_of(request).email,
        action=Action.KNOWLEDGE_EXPORT.value,
        target=f"knowledge:{name}/export.{job.format}",
        ip=client_ip(request),
        outcome="ok",
        status=200,
    )


@declare(Action.KNOWLEDGE_EXPORT)
@mapped
async def export_jsonl(request: web.Request) -> web.StreamResponse:
    """Every passage of a collection, with its vector, as JSON lines (streamed)."""
    return await _export(request, "jsonl")


@declare(Action.KNOWLEDGE_EXPORT)
@mapped
async def export_csv(request: web.Request) -> web.StreamResponse:
    """Every passage of a collection, with its vector, as CSV (streamed)."""
    return await _export(request, "csv")


@declare(Action.KNOWLEDGE_READ)
@mapped
async def list_jobs(request: web.Request) -> web.Response:
    """The tenant's import and export jobs, newest first."""
    tenant = tenant_of(request)
    query = parse_query(request.query, JobsQuery)
    return web.json_response({"jobs": runner_of(request).list(tenant, query.limit)})


@declare(Action.KNOWLEDGE_READ)
@mapped
async def get_job(request: web.Request) -> web.Response:
    """One job: its state, phase and progress."""
    tenant = tenant_of(request)
    return web.json_response(runner_of(request).get(tenant, request.match_info["job_id"]))


@declare(Action.KNOWLEDGE_IMPORT)
@mapped
async def cancel_job(request: web.Request) -> web.Response:
    """Cancel a running job (an import then writes nothing); answers once it has ended."""
    tenant = tenant_of(request)
    runner = runner_of(request)
    job_id = request.match_info["job_id"]
    note(request, target=f"knowledge-job:{job_id[:32]}")
    runner.cancel(tenant, job_id)
    await runner.wait(tenant, job_id, CANCEL_WAIT_SECONDS)
    return web.json_response(runner.get(tenant, job_id))


def _publish(app: web.Application, tenant: str, view: Any) -> None:
    broker = app.get(EVENTS)  # started after the jobs: looked up when there is news
    if broker is not None:
        broker.publish(tenant, knowledge_job(view))


def job_paths(database_path: Path) -> tuple[Path, Path]:
    """The jobs' database and the imports' spool folder, beside the hub database."""
    return database_path.parent / "knowledge-jobs.sqlite3", database_path.parent / "knowledge-spool"


async def jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    """The job runner (when knowledge is enabled): interrupted jobs marked failed at start."""
    settings = app[SETTINGS].current
    if not settings.knowledge.enabled:
        yield
        return
    database, spool = job_paths(settings.database_path)
    store = await asyncio.to_thread(JobStore, database)
    app[JOBS] = runner = JobRunner(store, spool, functools.partial(_publish, app))
    runner.start()
    yield
    await runner.close()


async def stop_jobs(app: web.Application) -> None:
    """Cancel the running jobs as the hub starts stopping (their requests then end)."""
    runner = app.get(JOBS)
    if runner is not None:
        await runner.stop()


ROUTES: Final = (
    ApiRoute("POST", f"{C}/import", import_documents, "knowledge_import", uploads=UPLOAD_TYPES),
    ApiRoute(
        "GET", f"{C}/export.jsonl", export_jsonl, "knowledge_export", streams=EXPORT_TYPES["jsonl"]
    ),
    ApiRoute("GET", f"{C}/export.csv", export_csv, "knowledge_export_csv", streams="text/csv"),
    ApiRoute("GET", f"{T}/jobs", list_jobs, "knowledge_jobs", query=JobsQuery),
    ApiRoute("GET", f"{T}/jobs/{{job_id}}", get_job, "knowledge_job"),
    ApiRoute("DELETE", f"{T}/jobs/{{job_id}}", cancel_job, "cancel_knowledge_job"),
)


def setup_jobs(app: web.Application) -> None:
    """The job runner's context and its stop (the routes are served with the API's)."""
    app.cleanup_ctx.append(jobs_ctx)
    app.on_shutdown.append(stop_jobs)

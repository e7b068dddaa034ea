"""The tenant's knowledge over the API: collections, documents, search, the batch embedding
endpoint, and bulk import and export jobs (``konak.hub.knowledge.jobs``). Every route is
the URL's tenant's only; the service's errors become the API's (404, 409, 422, 429, 503).

An import is the request's body itself, read line by line as it arrives (JSONL or CSV,
chosen by its Content-Type); the answer comes when the job has ended. An export is
streamed back as it is read. Both are jobs: listed, followed on the event stream, and
cancelled from another request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from konak.hub.api.errors import (
    ApiError,
    BadRequest,
    Exhausted,
    TooLarge,
    Unprocessable,
    Unsupported,
)
from konak.hub.api.fleet import tenant_of
from konak.hub.api.http import client_ip, declare, identity_of, note, read_json
from konak.hub.api.knowledge_schemas import (
    COLLECTION_PATTERN,
    MAX_BODY_BYTES,
    CollectionBody,
    DocumentsBody,
    EmbedBody,
    JobsQuery,
    SearchBody,
)
from konak.hub.api.openapi import ApiRoute
from konak.hub.api.schemas import parse_query
from konak.hub.events import knowledge_job
from konak.hub.keys import AUTH, EVENTS, KNOWLEDGE, SETTINGS
from konak.hub.knowledge.formats import MAX_ID_CHARS, Format, InvalidImport
from konak.hub.knowledge.jobs import (
    ImportTooLarge,
    Job,
    JobCancelled,
    JobError,
    JobFinished,
    JobInterrupted,
    JobNotFound,
    JobRunner,
    JobStore,
    SpoolFailed,
    TooManyJobs,
    UploadBroken,
)
from konak.hub.knowledge.service import KnowledgeService
from konak.hub.knowledge.types import (
    BackendUnavailable,
    CollectionExists,
    CollectionNotFound,
    InvalidDocument,
    InvalidFilter,
    KnowledgeError,
    QuotaExceeded,
)
from konak.hub.security.errors import Conflict, NotEnabled, NotFound, RateLimited, Unavailable
from konak.hub.security.rbac import Action

JOBS: Final = web.AppKey("konak_knowledge_jobs", JobRunner)
UPLOAD_CHUNK_BYTES: Final = 64 * 1024
CANCEL_WAIT_SECONDS: Final = 10.0  # a cancelled job rolls back; the answer shows its end
RETRY_JOBS_SECONDS: Final = 5.0
JSONL_TYPES: Final = ("application/x-ndjson", "application/jsonl", "application/json-lines")
UPLOAD_TYPES: Final = (*JSONL_TYPES[:1], "text/csv")  # what the OpenAPI document lists
EXPORT_TYPES: Final[dict[Format, str]] = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def api_error(exc: KnowledgeError) -> ApiError:
    """The API's answer to a knowledge error."""
    message, code = exc.message, exc.code
    if isinstance(exc, CollectionNotFound | JobNotFound):
        return NotFound(message, code=code)
    if isinstance(exc, CollectionExists | JobFinished | JobCancelled):
        return Conflict(message, code=code)
    if isinstance(exc, InvalidImport):
        return Unprocessable(message, [{"line": exc.line, "problem": exc.problem}], code=code)
    if isinstance(exc, InvalidDocument | InvalidFilter):
        return Unprocessable(message, code=code)
    if isinstance(exc, QuotaExceeded):
        return Exhausted(message, code=code)
    if isinstance(exc, TooManyJobs):
        return RateLimited(message, retry_after_seconds=RETRY_JOBS_SECONDS, code=code)
    if isinstance(exc, ImportTooLarge):
        return TooLarge(message, code=code)
    if isinstance(exc, BackendUnavailable | SpoolFailed | JobInterrupted):
        return Unavailable(message, code=code)
    return BadRequest(message, code=code)


def mapped(handler: Handler) -> Handler:
    """Report the knowledge errors of ``handler`` as API errors."""

    @functools.wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except KnowledgeError as exc:
            raise api_error(exc) from exc

    return run


def _parts(request: web.Request) -> tuple[KnowledgeService, str]:
    tenant = tenant_of(request)
    service = request.app.get(KNOWLEDGE)
    if service is None:
        raise NotEnabled("knowledge is not enabled on this hub", code="knowledge_disabled")
    return service, tenant


def _collection(request: web.Request) -> str:
    """The URL's collection name; one no collection can have is not found (it never reaches
    a backend)."""
    name = request.match_info["collection"]
    if not re.fullmatch(COLLECTION_PATTERN, name):
        raise NotFound(f"no collection {name[:64]!r}", code="collection_not_found")
    return name


def _noted(request: web.Request) -> str:
    """The URL's collection, named as the audit record's target of a write."""
    name = _collection(request)
    note(request, target=f"knowledge:{name}")
    return name


def _doc_id(request: web.Request) -> str:
    """The URL's document id (one no document can have is not found)."""
    doc_id = request.match_info["doc_id"]
    if len(doc_id) > MAX_ID_CHARS or not re.fullmatch(r"[^\x00-\x1f]+", doc_id):
        raise NotFound(f"no document {doc_id[:200]!r}", code="document_not_found")
    return doc_id


def _runner(request: web.Request) -> JobRunner:
    runner = request.app.get(JOBS)
    if runner is None:
        raise NotEnabled("knowledge is not enabled on this hub", code="knowledge_disabled")
    return runner


def _info(info: Any) -> dict[str, Any]:
    return dataclasses.asdict(info)


@declare(Action.KNOWLEDGE_READ)
@mapped
async def list_collections(request: web.Request) -> web.Response:
    """The tenant's collections."""
    service, tenant = _parts(request)
    infos = await service.list_collections(tenant)
    return web.json_response({"collections": [_info(i) for i in infos]})


@declare(Action.KNOWLEDGE_WRITE)
@mapped
async def create_collection(request: web.Request) -> web.Response:
    """Create a collection (409 when the tenant has one of that name)."""
    service, tenant = _parts(request)
    body = await read_json(request, CollectionBody)
    note(request, target=f"knowledge:{body.name}")
    info = await service.create_collection(tenant, body.name, body.description)
    return web.json_response(_info(info), status=201)


@declare(Action.KNOWLEDGE_READ)
@mapped
async def get_collection(request: web.Request) -> web.Response:
    """One collection, with its counts and storage."""
    service, tenant = _parts(request)
    info = await service.get_collection(tenant, _collection(request))
    return web.json_response(_info(info))


@declare(Action.KNOWLEDGE_WRITE)
@mapped
async def delete_collection(request: web.Request) -> web.Response:
    """Delete a collection and every document in it."""
    service, tenant = _parts(request)
    name = _noted(request)
    await service.delete_collection(tenant, name)
    return web.Response(status=204)


@declare(Action.KNOWLEDGE_WRITE)
@mapped
async def upsert_documents(request: web.Request) -> web.Response:
    """Upsert documents by id: every one of them, or none."""
    service, tenant = _parts(request)
    name = _noted(request)
    body = await read_json(request, DocumentsBody, MAX_BODY_BYTES)
    passages = await service.upsert(tenant, name, [d.document() for d in body.documents])
    return web.json_response({"documents": len(body.documents), "passages": passages})


@declare(Action.KNOWLEDGE_READ)
@mapped
async def get_document(request: web.Request) -> web.Response:
    """One document: its passages (text and metadata)."""
    service, tenant = _parts(request)
    name, doc_id = _collection(request), _doc_id(request)
    passages = await service.get_document(tenant, name, doc_id)
    if not passages:
        raise NotFound(f"no document {doc_id[:200]!r}", code="document_not_found")
    return web.json_response(
        {
            "id": doc_id,
            "collection": name,
            "passages": [{"id": p.id, "text": p.text, "metadata": p.metadata} for p in passages],
        }
    )


@declare(Action.KNOWLEDGE_WRITE)
@mapped
async def delete_document(request: web.Request) -> web.Response:
    """Delete one document (every passage of it)."""
    service, tenant = _parts(request)
    name, doc_id = _collection(request), _doc_id(request)
    note(request, target=f"knowledge:{name[:64]}/{doc_id[:200]}")
    if not await service.delete_documents(tenant, name, [doc_id]):
        raise NotFound(f"no document {doc_id[:200]!r}", code="document_not_found")
    return web.Response(status=204)


@declare(Action.KNOWLEDGE_READ)
@mapped
async def search(request: web.Request) -> web.Response:
    """The passages nearest a text or a vector, best first, with their cosine scores."""
    service, tenant = _parts(request)
    body = await read_json(request, SearchBody, MAX_BODY_BYTES)
    hits = await service.search(
        tenant, body.collections, text=body.text, vector=body.vector, k=body.k, filter=body.filter
    )
    return web.json_response({"hits": [_info(h) for h in hits]})


@declare(Action.KNOWLEDGE_WRITE)
@mapped
async def embed(request: web.Request) -> web.Response:
    """Vectors of texts (L2-normalised), from the model the collections use."""
    service, _ = _parts(request)
    body = await read_json(request, EmbedBody, MAX_BODY_BYTES)
    vectors = await service.embed(body.texts)
    model = request.app[SETTINGS].current.knowledge.model
    return web.json_response(
        {"model": model, "dim": int(vectors.shape[1]), "vectors": vectors.tolist()}
    )


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
    service, tenant = _parts(request)
    runner = _runner(request)
    name = _noted(request)
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
    service, tenant = _parts(request)
    runner = _runner(request)
    name = _collection(request)
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
    except JobError:
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
    return web.json_response({"jobs": _runner(request).list(tenant, query.limit)})


@declare(Action.KNOWLEDGE_READ)
@mapped
async def get_job(request: web.Request) -> web.Response:
    """One job: its state, phase and progress."""
    tenant = tenant_of(request)
    return web.json_response(_runner(request).get(tenant, request.match_info["job_id"]))


@declare(Action.KNOWLEDGE_IMPORT)
@mapped
async def cancel_job(request: web.Request) -> web.Response:
    """Cancel a running job (an import then writes nothing); answers once it has ended."""
    tenant = tenant_of(request)
    runner = _runner(request)
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


T: Final = "/api/tenants/{tenant}/knowledge"
C: Final = f"{T}/collections/{{collection}}"
ROUTES: Final = (
    ApiRoute("GET", f"{T}/collections", list_collections, "knowledge_collections"),
    ApiRoute(
        "POST", f"{T}/collections", create_collection, "create_collection", CollectionBody, 201
    ),
    ApiRoute("GET", C, get_collection, "knowledge_collection"),
    ApiRoute("DELETE", C, delete_collection, "delete_collection", None, 204),
    ApiRoute("POST", f"{C}/documents", upsert_documents, "upsert_documents", DocumentsBody),
    ApiRoute("GET", f"{C}/documents/{{doc_id}}", get_document, "knowledge_document"),
    ApiRoute("DELETE", f"{C}/documents/{{doc_id}}", delete_document, "delete_document", None, 204),
    ApiRoute("POST", f"{T}/search", search, "knowledge_search", SearchBody),
    ApiRoute("POST", f"{T}/embed", embed, "knowledge_embed", EmbedBody),
    ApiRoute("POST", f"{C}/import", import_documents, "knowledge_import", uploads=UPLOAD_TYPES),
    ApiRoute(
        "GET", f"{C}/export.jsonl", export_jsonl, "knowledge_export", streams=EXPORT_TYPES["jsonl"]
    ),
    ApiRoute("GET", f"{C}/export.csv", export_csv, "knowledge_export_csv", streams="text/csv"),
    ApiRoute("GET", f"{T}/jobs", list_jobs, "knowledge_jobs", query=JobsQuery),
    ApiRoute("GET", f"{T}/jobs/{{job_id}}", get_job, "knowledge_job"),
    ApiRoute("DELETE", f"{T}/jobs/{{job_id}}", cancel_job, "cancel_knowledge_job"),
)


def setup_knowledge(app: web.Application) -> None:
    """The job runner's context and its stop (the routes are served with the API's)."""
    app.cleanup_ctx.append(jobs_ctx)
    app.on_shutdown.append(stop_jobs)

"""The tenant's knowledge over the API: collections, documents, search and the batch
embedding endpoint (bulk import and export: ``knowledge_jobs``). Every route is the URL's
tenant's only; the service's errors become the API's (404, 409, 422, 429, 503)."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from konak.hub.api.errors import (
    ApiError,
    BadRequest,
    Exhausted,
    TooLarge,
    Unprocessable,
)
from konak.hub.api.fleet import tenant_of
from konak.hub.api.http import declare, note, read_json
from konak.hub.api.knowledge_schemas import (
    COLLECTION_PATTERN,
    MAX_BODY_BYTES,
    CollectionBody,
    DocumentsBody,
    EmbedBody,
    SearchBody,
)
from konak.hub.api.openapi import ApiRoute
from konak.hub.keys import KNOWLEDGE, SETTINGS
from konak.hub.knowledge.formats import MAX_ID_CHARS, InvalidImport
from konak.hub.knowledge.job_store import (
    ImportTooLarge,
    JobCancelled,
    JobFinished,
    JobInterrupted,
    JobNotFound,
    SpoolFailed,
    TooManyJobs,
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

RETRY_JOBS_SECONDS: Final = 5.0
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


def service_of(request: web.Request) -> tuple[KnowledgeService, str]:
    tenant = tenant_of(request)
    service = request.app.get(KNOWLEDGE)
    if service is None:
        raise NotEnabled("knowledge is not enabled on this hub", code="knowledge_disabled")
    return service, tenant


def collection_of(request: web.Request) -> str:
    """The URL's collection name; one no collection can have is not found (it never reaches
    a backend)."""
    name = request.match_info["collection"]
    if not re.fullmatch(COLLECTION_PATTERN, name):
        raise NotFound(f"no collection {name[:64]!r}", code="collection_not_found")
    return name


def noted_collection(request: web.Request) -> str:
    """The URL's collection, named as the audit record's target of a write."""
    name = collection_of(request)
    note(request, target=f"knowledge:{name}")
    return name


def doc_id_of(request: web.Request) -> str:
    """The URL's document id (one no document can have is not found)."""
    doc_id = request.match_info["doc_id"]
    if len(doc_id) > MAX_ID_CHARS or not re.fullmatch(r"[^\x00-\x1f]+", doc_id):
        raise NotFound(f"no document {doc_id[:200]!r}", code="document_not_found")
    return doc_id


def _info(info: Any) -> dict[str, Any]:
    return dataclasses.asdict(info)


@declare(Action.KNOWLEDGE_READ)
@mapped
async def list_collections(request: web.Request) -> web.Response:
    """The tenant's collections."""
    service, tenant = service_of(request)
    infos = await service.list_collections(tenant)
    return web.json_response({"collections": [_info(i) for i in infos]})


@declare(Action.KNOWLEDGE_WRITE)
@mapped
async def create_collection(request: web.Request) -> web.Response:
    """Create a collection (409 when the tenant has one of that name)."""
    service, tenant = service_of(request)
    body = await read_json(request, CollectionBody)
    note(request, target=f"knowledge:{body.name}")
    info = await service.create_collection(tenant, body.name, body.description)
    return web.json_response(_info(info), status=201)


@declare(Action.KNOWLEDGE_READ)
@mapped
async def get_collection(request: web.Request) -> web.Response:
    """One collection, with its counts and storage."""
    service, tenant = service_of(request)
    info = await service.get_collection(tenant, collection_of(request))
    return web.json_response(_info(info))


@declare(Action.KNOWLEDGE_WRITE)
@mapped
async def delete_collection(request: web.Request) -> web.Response:
    """Delete a collection and every document in it."""
    service, tenant = service_of(request)
    name = noted_collection(request)
    await service.delete_collection(tenant, name)
    return web.Response(status=204)


@declare(Action.KNOWLEDGE_WRITE)
@mapped
async def upsert_documents(request: web.Request) -> web.Response:
    """Upsert documents by id: every one of them, or none."""
    service, tenant = service_of(request)
    name = noted_collection(request)
    body = await read_json(request, DocumentsBody, MAX_BODY_BYTES)
    passages = await service.upsert(tenant, name, [d.document() for d in body.documents])
    return web.json_response({"documents": len(body.documents), "passages": passages})


@declare(Action.KNOWLEDGE_READ)
@mapped
async def get_document(request: web.Request) -> web.Response:
    """One document: its passages (text and metadata)."""
    service, tenant = service_of(request)
    name, doc_id = collection_of(request), doc_id_of(request)
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
    service, tenant = service_of(request)
    name, doc_id = collection_of(request), doc_id_of(request)
    note(request, target=f"knowledge:{name[:64]}/{doc_id[:200]}")
    if not await service.delete_documents(tenant, name, [doc_id]):
        raise NotFound(f"no document {doc_id[:200]!r}", code="document_not_found")
    return web.Response(status=204)


@declare(Action.KNOWLEDGE_READ)
@mapped
async def search(request: web.Request) -> web.Response:
    """The passages nearest a text or a vector, best first, with their cosine scores."""
    service, tenant = service_of(request)
    body = await read_json(request, SearchBody, MAX_BODY_BYTES)
    hits = await service.search(
        tenant, body.collections, text=body.text, vector=body.vector, k=body.k, filter=body.filter
    )
    return web.json_response({"hits": [_info(h) for h in hits]})


@declare(Action.KNOWLEDGE_WRITE)
@mapped
async def embed(request: web.Request) -> web.Response:
    """Vectors of texts (L2-normalised), from the model the collections use."""
    service, _ = service_of(request)
    body = await read_json(request, EmbedBody, MAX_BODY_BYTES)
    vectors = await service.embed(body.texts)
    model = request.app[SETTINGS].current.knowledge.model
    return web.json_response(
        {"model": model, "dim": int(vectors.shape[1]), "vectors": vectors.tolist()}
    )


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
)

"""konak-knowledge: search and list the tenant's knowledge collections.

Served by the hub beside konak-fleet, on the same listener at ``/knowledge/mcp`` and with the
same per-tenant bearer token: the token's SHA-256 names the tenant, and every tool reads
only that tenant's collections (the service is tenant-scoped; no tool takes a tenant).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final

# Imported at module level: the SDK evaluates tool signatures (``ctx: Context``) at runtime.
from mcp.server.mcpserver import Context, MCPServer

from konak.hub.mcp_servers.fleet import TokenIndex, token_tenant

if TYPE_CHECKING:
    from collections.abc import Iterator

    from konak.hub.knowledge.service import KnowledgeService

SERVER_NAME: Final = "konak-knowledge"
PATH: Final = "/knowledge/mcp"
MAX_K: Final = 50


def build_knowledge_server(service: KnowledgeService, tokens: TokenIndex) -> MCPServer:
    """The konak-knowledge MCP server over the hub's knowledge service."""
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    from konak.hub.knowledge.types import KnowledgeError

    server: MCPServer = MCPServer(
        SERVER_NAME, instructions="Konak knowledge: the tenant's notes, searchable by meaning"
    )
    read_only = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True)

    @contextlib.contextmanager
    def tool_errors() -> Iterator[None]:
        """A knowledge error becomes the tool's error, with its code."""
        try:
            yield
        except KnowledgeError as exc:
            raise ToolError(f"{exc.code}: {exc.message}") from exc

    def tenant_of(ctx: Context) -> str:
        tenant = token_tenant((ctx.headers or {}).get("authorization"), tokens())
        if tenant is None:
            raise ToolError("unauthorized")
        return tenant

    @server.tool(name="search_knowledge", annotations=read_only)
    async def search_knowledge(
        query: str,
        ctx: Context,
        collection: str | None = None,
        k: int = 5,
        filter: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Search the tenant's notes by meaning: the k nearest passages (best first, score
        is cosine similarity), in one collection or all, optionally filtered on metadata."""
        tenant = tenant_of(ctx)
        if not 1 <= k <= MAX_K:
            raise ToolError(f"k must be between 1 and {MAX_K}")
        with tool_errors():
            hits = await service.search(
                tenant, [collection] if collection else None, text=query, k=k, filter=filter
            )
        return [
            {
                "collection": h.collection,
                "id": h.id,
                "doc_id": h.doc_id,
                "text": h.text,
                "metadata": dict(h.metadata),
                "score": round(h.score, 4),
            }
            for h in hits
        ]

    @server.tool(name="list_collections", annotations=read_only)
    async def list_collections(ctx: Context) -> list[dict[str, Any]]:
        """The tenant's knowledge collections with their description and size."""
        tenant = tenant_of(ctx)
        with tool_errors():
            found = await service.list_collections(tenant)
        return [
            {
                "name": c.name,
                "description": c.description,
                "documents": c.documents,
                "passages": c.passages,
                "model": c.model,
            }
            for c in found
        ]

    return server

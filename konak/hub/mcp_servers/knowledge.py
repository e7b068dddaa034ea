"""konak-knowledge: search and list the tenant's knowledge collections.

Served by the hub beside konak-fleet, on the same listener at ``/knowledge/mcp`` and with the
same per-tenant bearer token: the token's SHA-256 names the tenant, and every tool reads
only that tenant's collections (the service is tenant-scoped; no tool takes a tenant).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

# Imported at module level: the SDK evaluates tool signatures (``ctx: Context``) at runtime.
from mcp.server.mcpserver import Context, MCPServer

from konak.hub.mcp_servers.fleet import TokenIndex, token_tenant

if TYPE_CHECKING:
    from konak.hub.knowledge.types import CollectionInfo, Hit

SERVER_NAME: Final = "konak-knowledge"
PATH: Final = "/knowledge/mcp"
MAX_K: Final = 50


class Searchable(Protocol):
    """What konak-knowledge needs of ``KnowledgeService``."""

    async def list_collections(self, tenant: str) -> list[CollectionInfo]:
        """The tenant's collections."""
        ...

    async def search(
        self,
        tenant: str,
        collections: Sequence[str] | None,
        *,
        text: str | None = None,
        vector: Sequence[float] | None = None,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """Nearest passages, best first."""
        ...


def build_knowledge_server(service: Searchable, tokens: TokenIndex) -> MCPServer:
    """The konak-knowledge MCP server over the hub's knowledge service."""
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    from konak.hub.knowledge.types import KnowledgeError

    server: MCPServer = MCPServer(
        SERVER_NAME, instructions="Konak knowledge: the tenant's notes, searchable by meaning"
    )
    read_only = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True)

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
        try:
            hits = await service.search(
                tenant, [collection] if collection else None, text=query, k=k, filter=filter
            )
        except KnowledgeError as exc:
            raise ToolError(f"{exc.code}: {exc.message}") from exc
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
        try:
            found = await service.list_collections(tenant)
        except KnowledgeError as exc:
            raise ToolError(f"{exc.code}: {exc.message}") from exc
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

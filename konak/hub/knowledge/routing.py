"""Semantic tool routing: a transcript that matched no intent on the device goes to the MCP
tool whose description, or one of the tenant's example phrasings, is nearest.

A tool's text is its name split into words plus its description. A tenant gives examples as
documents of its collection ``tool-examples`` (through the knowledge API like any other):
the text is a phrasing, ``metadata.tool`` names the tool and ``metadata.server``
optionally its server. A tool's score is the best of its description's and its examples'.
The router only ranks; the caller applies ``routing_threshold`` and fills the arguments.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    from konak.hub.knowledge.service import KnowledgeService
    from konak.hub.knowledge.types import Hit
    from konak.hub.mcp_host import McpHost

EXAMPLES_COLLECTION: Final = "tool-examples"
# Example hits read per turn: enough for a tool with a few close phrasings.
EXAMPLE_HITS: Final = 8
# Description vectors kept (a hub's tools rarely change; the texts are short).
MAX_CACHED_TEXTS: Final = 4096

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[_\-.]+")


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """A tool a tenant's MCP servers offer, as routing sees it."""

    server: str
    name: str
    description: str
    required: tuple[str, ...] = ()
    read_only: bool = False
    destructive: bool = False


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """The nearest tool and how near (cosine similarity)."""

    tool: ToolInfo
    score: float


Embed = Callable[[Sequence[str]], Awaitable[np.ndarray]]


def tool_text(tool: ToolInfo) -> str:
    """What a tool's description vector is made from: ``announce: Speak text on ...``."""
    words = _CAMEL.sub(" ", tool.name).strip().lower()
    return f"{words}: {tool.description.strip()}" if tool.description.strip() else words


def fill_arguments(required: Iterable[str], context: Mapping[str, Any]) -> dict[str, Any] | None:
    """The tool's required arguments from the turn's context, or None when one is missing."""
    out: dict[str, Any] = {}
    for name in required:
        if name not in context:
            return None
        out[name] = context[name]
    return out


def host_tools(host: McpHost, tenant: str) -> list[ToolInfo]:
    """The tools the tenant's connected MCP servers offer, in configuration order; not
    konak-knowledge's: a turn searches the same notes itself and speaks the best sentence,
    where its tool would answer a list of hits."""
    from konak.hub.mcp_servers.knowledge import SERVER_NAME

    found = []
    for conn in host.connections(tenant):
        if conn.server_name == SERVER_NAME:
            continue
        for name, tool in list(conn.tools.items()):
            schema = tool.input_schema or {}
            required = schema.get("required", [])
            found.append(
                ToolInfo(
                    server=conn.name,
                    name=name,
                    description=tool.description or "",
                    required=tuple(r for r in required if isinstance(r, str)),
                    read_only=conn.is_read_only(name),
                    destructive=bool(tool.annotations and tool.annotations.destructive_hint),
                )
            )
    return found


class ToolRouter:
    """Ranks a tenant's tools against a transcript's vector."""

    def __init__(self, embed: Embed, examples: KnowledgeService | None = None) -> None:
        self._embed = embed
        self._examples = examples
        self._vectors: dict[str, np.ndarray] = {}

    async def _text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            if len(self._vectors) + len(missing) > MAX_CACHED_TEXTS:
                self._vectors.clear()
            for text, vec in zip(missing, await self._embed(missing), strict=True):
                self._vectors[text] = np.asarray(vec, dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts])

    async def nearest(
        self, tenant: str, vector: np.ndarray, tools: Sequence[ToolInfo]
    ) -> ToolChoice | None:
        """The tool nearest to ``vector`` (no threshold applied), or None without tools.
        Tools annotated destructive are never chosen by similarity: they need an intent."""
        candidates = [t for t in tools if not t.destructive]
        if not candidates:
            return None
        scores = await self._text_vectors([tool_text(t) for t in candidates]) @ vector
        best = {(t.server, t.name): float(s) for t, s in zip(candidates, scores, strict=True)}
        for hit in await self._example_hits(tenant, vector):
            name, server = hit.metadata.get("tool"), hit.metadata.get("server")
            for t in candidates:
                if t.name == name and (server is None or server == t.server):
                    key = (t.server, t.name)
                    best[key] = max(best[key], hit.score)
                    break
        tool = max(candidates, key=lambda t: best[(t.server, t.name)])
        return ToolChoice(tool, best[(tool.server, tool.name)])

    async def _example_hits(self, tenant: str, vector: np.ndarray) -> list[Hit]:
        if self._examples is None:
            return []
        from konak.hub.knowledge.types import CollectionNotFound

        try:
            return await self._examples.search(
                tenant, [EXAMPLES_COLLECTION], vector=vector.tolist(), k=EXAMPLE_HITS
            )
        except CollectionNotFound:
            return []

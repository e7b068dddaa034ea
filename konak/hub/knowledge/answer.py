"""Answering a voice turn from the tenant's knowledge: the nearest passage, or the nearest
tool, or neither.

A transcript the device matched to no intent is embedded once. The semantic cache answers
first (``cache_threshold``). Otherwise the nearest passage of the tenant's collections and
the nearest tool (``routing.py``) are found; each counts only above its own threshold
(``answer_threshold``, ``routing_threshold``), and when both do, the one further above its
threshold wins (a margin, not the raw cosine: passages and tool descriptions score on
different scales). A passage is spoken as its sentence(s) nearest to the question.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import numpy as np

from konak.hub.knowledge.cache import SemanticCache
from konak.hub.knowledge.routing import EXAMPLES_COLLECTION, ToolChoice, ToolInfo, ToolRouter
from konak.hub.speakable import MAX_SPOKEN_CHARS, speakable

if TYPE_CHECKING:
    from konak.hub.knowledge.service import KnowledgeService
    from konak.hub.knowledge.settings import KnowledgeSettings
    from konak.hub.knowledge.types import Hit

logger = logging.getLogger(__name__)

# A best sentence shorter than this takes its better neighbour along ("The wifi is
# Konak-Guest. The password is blue-otter-42."), if that is nearly as near the question.
SHORT_SENTENCE_CHARS: Final = 80
NEIGHBOUR_SCORE_RATIO: Final = 0.75
# A period after these does not end a sentence ("Dr. Aydin").
ABBREVIATIONS: Final = frozenset(
    {"dr.", "mr.", "mrs.", "ms.", "prof.", "st.", "no.", "nr.", "vs.", "etc.", "e.g.", "i.e."}
)
# Slot names a HassGetKnowledge-style intent may carry its question in, in order.
QUESTION_SLOTS: Final = ("question", "query", "topic")

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")
_LINES = re.compile(r"\n\s*\n|\n(?=\s*(?:#|[-*+]\s|\d+[.)]\s))")


class Turn(Protocol):
    """The turn a question belongs to (an ``Intent``), for the log."""

    @property
    def tenant(self) -> str:
        """Whose knowledge is asked."""
        ...

    @property
    def turn_id(self) -> str:
        """The turn's id."""
        ...


@dataclass(frozen=True, slots=True)
class Decision:
    """What knowledge makes of a transcript."""

    kind: Literal["answer", "tool", "none"]
    text: str = ""
    source: Literal["cache", "passage", ""] = ""
    score: float = 0.0
    tool: ToolChoice | None = None
    collection: str = ""


NONE: Final = Decision("none")


def sentences(text: str) -> list[str]:
    """A passage's speakable sentences (paragraphs, list items and headings split too)."""
    out: list[str] = []
    for block in _LINES.split(text):
        clean = speakable(block, limit=len(block) + 1)
        pending = ""
        for piece in _SENTENCE.split(clean):
            pending = f"{pending} {piece}".strip()
            last = pending.rsplit(" ", 1)[-1].lower()
            if last in ABBREVIATIONS or re.fullmatch(r"[a-z]\.", last):
                continue  # "Dr." or an initial: the sentence goes on
            if pending:
                out.append(pending)
            pending = ""
        if pending:
            out.append(pending)
    return out


def question_slot(slots: Mapping[str, Any], text: str) -> str:
    """The question of a HassGetKnowledge-style intent: its slot, else the transcript."""
    for name in QUESTION_SLOTS:
        value = slots.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return text


class VoiceKnowledge:
    """Cache, passage search and tool routing for the turns of every tenant."""

    def __init__(
        self,
        service: KnowledgeService,
        settings: Callable[[], KnowledgeSettings],
        tools: Callable[[str], Sequence[ToolInfo]] = lambda tenant: (),
        cache: SemanticCache | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.tools = tools
        self.cache = cache or SemanticCache()
        self.router = ToolRouter(service.embed, service)
        service.on_change(self.cache.invalidate)

    async def for_turn(self, turn: Turn, question: str, *, route_tools: bool = True) -> Decision:
        """The reply a turn's question gets from knowledge: cached, a passage, a tool, or
        none (also when knowledge fails: logged, and the turn is not understood)."""
        from konak.hub.knowledge.types import KnowledgeError

        try:
            decision = await self.decide(turn.tenant, question, route_tools=route_tools)
        except KnowledgeError as exc:
            logger.warning(
                "turn %s/%s: knowledge unavailable (%s): %s",
                turn.tenant,
                turn.turn_id,
                exc.code,
                exc.message,
            )
            return NONE
        if decision.kind != "none":
            where = (
                f"tool {decision.tool.tool.server}/{decision.tool.tool.name}"
                if decision.tool is not None
                else f"{decision.source} {decision.collection}".rstrip()
            )
            logger.info(
                "turn %s/%s answered by knowledge: %s (score %.3f)",
                turn.tenant,
                turn.turn_id,
                where,
                decision.score,
            )
        return decision

    async def decide(self, tenant: str, question: str, *, route_tools: bool = True) -> Decision:
        """What knowledge makes of a tenant's question; raises KnowledgeError."""
        s = self.settings()
        vector = np.asarray((await self.service.embed([question]))[0], dtype=np.float32)
        cached = self.cache.get(tenant, vector, s.cache_threshold)
        if cached is not None:
            return Decision("answer", cached, "cache", 1.0)
        generation = self.cache.generation(tenant)
        hit = await self.nearest_passage(tenant, vector)
        choice = None
        if route_tools:
            choice = await self.router.nearest(tenant, vector, self.tools(tenant))
        passage_margin = hit.score - s.answer_threshold if hit is not None else -1.0
        tool_margin = choice.score - s.routing_threshold if choice is not None else -1.0
        if passage_margin < 0 and tool_margin < 0:
            return NONE
        if choice is not None and tool_margin > passage_margin:
            return Decision("tool", score=choice.score, tool=choice)
        assert hit is not None
        spoken = await self.best_sentences(vector, hit.text)
        self.cache.put(tenant, vector, spoken, s.cache_ttl_seconds, generation)
        return Decision("answer", spoken, "passage", hit.score, collection=hit.collection)

    async def nearest_passage(self, tenant: str, vector: np.ndarray) -> Hit | None:
        """The tenant's nearest passage outside ``tool-examples``, or None."""
        names = [
            c.name
            for c in await self.service.list_collections(tenant)
            if c.name != EXAMPLES_COLLECTION
        ]
        if not names:
            return None
        hits = await self.service.search(tenant, names, vector=vector.tolist(), k=1)
        return hits[0] if hits else None

    async def best_sentences(self, vector: np.ndarray, passage: str) -> str:
        """The passage's sentence nearest to the question (a short one with its better
        neighbour), speakable; questions in the passage (an FAQ's) are not answers."""
        parts = sentences(passage)
        if len(parts) <= 1:
            return speakable(passage)
        scores = (await self.service.embed(parts)) @ vector
        candidates = [i for i, p in enumerate(parts) if not p.endswith("?")] or list(
            range(len(parts))
        )
        best = max(candidates, key=lambda i: float(scores[i]))
        chosen = [best]
        if len(parts[best]) < SHORT_SENTENCE_CHARS:
            neighbours = [i for i in (best - 1, best + 1) if i in candidates]
            if neighbours:
                other = max(neighbours, key=lambda i: float(scores[i]))
                near = float(scores[other]) >= NEIGHBOUR_SCORE_RATIO * float(scores[best])
                if near and len(parts[best]) + len(parts[other]) < MAX_SPOKEN_CHARS:
                    chosen = sorted((best, other))
        return speakable(" ".join(parts[i] for i in chosen))

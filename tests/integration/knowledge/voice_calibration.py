"""Calibration of the voice thresholds on phrasings: a household's notes, questions with and
without an answer in them, commands for the tenant's tools and chit-chat. Each phrasing is
in the ``tune`` split (thresholds were chosen on it) or ``held_out`` (never looked at while
choosing; the figures in docs/knowledge-voice.md are measured on it).

``python -m tests.integration.knowledge.voice_calibration`` prints the threshold sweep on the
tune split and the figures of both splits at the thresholds given (default: the settings').
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from konak.hub.knowledge.answer import VoiceKnowledge
from konak.hub.knowledge.settings import KnowledgeSettings
from tests.hub.knowledge.voice_fakes import FakeKnowledge

from .voice_phrasings import CASES, NOTES, OTHER_QUESTION, SAME_QUESTION, TOOLS, Case, Kind

# What the sweep chose on the tune split (docs/knowledge-voice.md).
CALIBRATED_ANSWER = 0.47
CALIBRATED_ROUTING = 0.34


@dataclass(frozen=True, slots=True)
class Scored:
    """A case with its nearest passage and nearest tool (and their scores)."""

    case: Case
    passage: str
    passage_score: float
    tool: str
    tool_score: float


async def score_cases(voice: VoiceKnowledge, cases: Sequence[Case]) -> list[Scored]:
    """Each case's nearest passage and tool, as ``VoiceKnowledge`` finds them."""
    out = []
    for case in cases:
        vector = (await voice.service.embed([case.text]))[0]
        hit = await voice.nearest_passage("acme", vector)
        choice = await voice.router.nearest("acme", vector, TOOLS)
        assert hit is not None
        assert choice is not None
        out.append(Scored(case, hit.doc_id, hit.score, choice.tool.name, choice.score))
    return out


def decide(s: Scored, answer: float, routing: float) -> tuple[Kind, str]:
    """What the thresholds and the margin rule make of a scored case (as ``decide``)."""
    passage_margin = s.passage_score - answer
    tool_margin = s.tool_score - routing
    if passage_margin < 0 and tool_margin < 0:
        return "none", ""
    if tool_margin > passage_margin:
        return "tool", s.tool
    return "passage", s.passage


@dataclass(frozen=True, slots=True)
class Figures:
    """Precision and recall of answering from passages and of routing to tools, and how
    many cases got exactly the right outcome."""

    answer_precision: float
    answer_recall: float
    routing_precision: float
    routing_recall: float
    accuracy: float
    cases: int


def _ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def figures(scored: Sequence[Scored], answer: float, routing: float) -> Figures:
    """The figures of ``scored`` at the two thresholds."""
    got = [decide(s, answer, routing) for s in scored]
    want = [(s.case.kind, s.case.target) for s in scored]
    answered = [(g, w) for g, w in zip(got, want, strict=True) if g[0] == "passage"]
    routed = [(g, w) for g, w in zip(got, want, strict=True) if g[0] == "tool"]
    return Figures(
        answer_precision=_ratio(sum(g == w for g, w in answered), len(answered)),
        answer_recall=_ratio(
            sum(g == w for g, w in answered), sum(w[0] == "passage" for w in want)
        ),
        routing_precision=_ratio(sum(g == w for g, w in routed), len(routed)),
        routing_recall=_ratio(sum(g == w for g, w in routed), sum(w[0] == "tool" for w in want)),
        accuracy=_ratio(sum(g == w for g, w in zip(got, want, strict=True)), len(want)),
        cases=len(want),
    )


def cost(scored: Sequence[Scored], answer: float, routing: float) -> int:
    """What the thresholds' mistakes cost: a wrong answer or a wrong tool 2 (it says or does
    the wrong thing), a missed one 1 ("Sorry, I didn't understand that.")."""
    total = 0
    for s in scored:
        got = decide(s, answer, routing)
        if got != (s.case.kind, s.case.target):
            total += 1 if got[0] == "none" else 2
    return total


def sweep(scored: Sequence[Scored]) -> tuple[float, float]:
    """The thresholds (0.01 steps) of the least ``cost`` on ``scored``; a tie goes to the
    higher thresholds."""
    grid = [round(float(x), 2) for x in np.arange(0.20, 0.81, 0.01)]
    best = min(
        ((cost(scored, a, r), a, r) for a in grid for r in grid),
        key=lambda t: (t[0], -(t[1] + t[2])),
    )
    return best[1], best[2]


def pair_scores(
    embed: Callable[[Sequence[str]], np.ndarray], pairs: Sequence[tuple[str, str]]
) -> list[float]:
    """The cosine similarity of each pair."""
    return [float(a @ b) for a, b in (embed(list(pair)) for pair in pairs)]


def load_voice() -> VoiceKnowledge:
    """VoiceKnowledge over the notes with the real embedding model."""
    from konak.edge_models.store import ModelStore
    from konak.hub.knowledge.embedder import Embedder

    models = Path(os.environ.get("KONAK_MODELS_DIR", "/var/lib/konak/models"))
    embedder = Embedder.load(
        ModelStore(models).path("all-minilm-l6-v2"), model_id="all-minilm-l6-v2"
    )
    # Exact cosine search in memory: sqlite-vec's and pgvector's searches are exact too.
    notes = FakeKnowledge(embedder.embed)
    for doc_id, text in NOTES.items():
        notes.add("acme", "notes", doc_id, text)
    settings = KnowledgeSettings()
    return VoiceKnowledge(notes, lambda: settings, lambda t: TOOLS)


def memory(voice: VoiceKnowledge) -> FakeKnowledge:
    """The in-memory notes behind ``load_voice``'s VoiceKnowledge."""
    assert isinstance(voice.service, FakeKnowledge)
    return voice.service


async def _main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answer", type=float)
    parser.add_argument("--routing", type=float)
    args = parser.parse_args(argv)
    voice = load_voice()
    tune = await score_cases(voice, [c for c in CASES if c.split == "tune"])
    held = await score_cases(voice, [c for c in CASES if c.split == "held_out"])
    print("sweep on the tune split:", sweep(tune))
    embed = memory(voice).embed_now
    print("same question, least similar:", min(pair_scores(embed, SAME_QUESTION)))
    print("other question, most similar:", max(pair_scores(embed, OTHER_QUESTION)))
    s = voice.settings()
    answer = args.answer if args.answer is not None else s.answer_threshold
    routing = args.routing if args.routing is not None else s.routing_threshold
    for name, scored in (("tune", tune), ("held_out", held)):
        print(name, answer, routing, figures(scored, answer, routing))
        for x in scored:
            if decide(x, answer, routing) != (x.case.kind, x.case.target):
                print(
                    f"  miss {x.case.group:12} {x.case.text!r}: passage {x.passage} "
                    f"{x.passage_score:.3f}, tool {x.tool} {x.tool_score:.3f}"
                )


if __name__ == "__main__":
    import asyncio

    asyncio.run(_main(sys.argv[1:]))

"""The hub's sentence embedding rate on one core, float and int8 (docs/embeddings.md)."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Final

MODEL: Final = "all-minilm-l6-v2"
SHORT: Final = "what's the guest wifi password"
# Passages of the lengths a tenant's notes have: a few words to a long paragraph.
CORPUS: Final = (
    "Turn on the kitchen lights.",
    "The guest network is called HomeGuest and its password is on the fridge door.",
    "Bins go out on Thursday evening; recycling every other week, garden waste in summer.",
    "When is the next dentist appointment?",
    "The boiler pressure should read between one and one and a half bar when the heating is "
    "off; if it drops below one, open the filling loop under the boiler until the needle "
    "reaches the green zone, then close it again.",
    "Spare keys: the garden shed, top shelf, in the blue tin.",
    "Dr. Patel's surgery is open 8 to 6 on weekdays and can be reached on 555 0142.",
    "The dog gets half a cup of dry food at 7 am and 6 pm, and no chocolate, grapes or onions "
    "under any circumstances, even if he begs at the table.",
    "What's the weather tomorrow?",
    "Piano lessons with Mr. Olsen are on Wednesdays at four; bring the green book.",
    "To reset the router, hold the button on the back for ten seconds until the lights blink "
    "orange, wait two minutes, then reconnect every device with the new password.",
    "Grandma's birthday is on the twelfth of March.",
)
ONE_SENTENCE_RUNS: Final = 200


def _figures(embedder: Any, corpus: list[str], repeats: int) -> dict[str, Any]:
    embedder.embed(corpus[:16])  # warm up: first runs allocate
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        embedder.embed(corpus)
        rates.append(len(corpus) / (time.perf_counter() - started))
    single = []
    for _ in range(ONE_SENTENCE_RUNS):
        started = time.perf_counter()
        embedder.embed([SHORT])
        single.append(time.perf_counter() - started)
    return {
        "sentences_per_second": round(statistics.median(rates), 1),
        "short_sentence_p50_ms": round(statistics.median(single) * 1000, 2),
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    """Embed a corpus with one onnxruntime thread, float then int8; sentences/s and the p50
    latency of one short sentence. Needs ``konak models pull hub``."""
    from konak.edge_models.errors import ModelError
    from konak.edge_models.settings import ModelSettings
    from konak.edge_models.store import ModelStore
    from konak.hub.knowledge.embedder import Embedder

    settings = ModelSettings.resolve(
        models_dir=None, accept_licenses=(), environ=os.environ, config={}
    )
    try:
        model_dir = ModelStore(settings.models_dir).path(MODEL)
    except ModelError as exc:
        return {"model": MODEL, "error": exc.message}
    corpus = list(CORPUS) * (8 if quick else 40)
    pieces = Embedder.load(model_dir, model_id=MODEL).word_pieces(corpus)
    results: dict[str, Any] = {
        "model": MODEL,
        "threads": 1,
        "corpus_sentences": len(corpus),
        "mean_word_pieces": round(statistics.mean(pieces), 1),
    }
    for variant, int8 in (("float", False), ("int8", True)):
        started = time.perf_counter()
        embedder = Embedder.load(model_dir, model_id=MODEL, threads=1, int8=int8)
        load = time.perf_counter() - started
        graph = model_dir / ("model.int8.onnx" if int8 else "model.onnx")
        results[variant] = {
            "load_seconds": round(load, 3),
            "file_mb": round(graph.stat().st_size / 1e6, 1),
            **_figures(embedder, corpus, 1 if quick else 3),
        }
    return results


def markdown(figures: dict[str, Any]) -> list[str]:
    """The section of bench/results.md."""
    lines = [f"## Sentence embeddings ({figures['model']}, one onnxruntime thread)", ""]
    if "error" in figures:
        return [*lines, f"Not measured: {figures['error']}", ""]
    lines += [
        "| variant | file MB | load s | sentences/s | one short sentence p50 ms |",
        "|---|---|---|---|---|",
    ]
    for variant in ("float", "int8"):
        f = figures[variant]
        lines.append(
            f"| {variant} | {f['file_mb']} | {f['load_seconds']} | {f['sentences_per_second']} "
            f"| {f['short_sentence_p50_ms']} |"
        )
    lines += [
        "",
        f"{figures['corpus_sentences']} passages, {figures['mean_word_pieces']} word pieces on "
        "average; int8 runs one text per run (docs/embeddings.md).",
        "",
    ]
    return lines

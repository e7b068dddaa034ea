"""The Embedder on a tiny converted checkpoint (the real model: tests/edge_models/
test_embedding_model.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from konak.edge_models import bert_onnx
from konak.edge_models.errors import ModelError
from konak.hub.knowledge.embedder import Embedder
from tests.edge_models import tiny_bert

TEXTS = ["the kitchen light", "guest wifi password", "", "turn off the kitchen light on bin day"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny")
    files = (bert_onnx.FLOAT_FILE, bert_onnx.INT8_FILE, bert_onnx.TOKENIZER_FILE)
    for name, body in bert_onnx.convert(tiny_bert.inputs(), files).items():
        (directory / name).write_bytes(body)
    return directory


def test_texts_come_back_as_unit_vectors_in_the_order_given(model_dir: Path) -> None:
    embedder = Embedder.load(model_dir, model_id="tiny")
    embedder.batch_texts = 2  # several batches, formed by length, not by position

    vectors = embedder.embed(TEXTS)

    assert vectors.shape == (len(TEXTS), tiny_bert.HIDDEN)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    alone = np.concatenate([embedder.embed([t]) for t in TEXTS])
    np.testing.assert_allclose(vectors, alone, atol=1e-5)


def test_no_texts_give_no_rows(model_dir: Path) -> None:
    embedder = Embedder.load(model_dir, model_id="tiny", int8=True)

    assert embedder.embed([]).shape == (0, tiny_bert.HIDDEN)


def test_the_int8_graph_embeds_one_text_per_run_so_neighbours_do_not_change_a_vector(
    model_dir: Path,
) -> None:
    embedder = Embedder.load(model_dir, model_id="tiny", int8=True)

    together = embedder.embed(TEXTS)

    assert embedder.batch_texts == 1
    np.testing.assert_array_equal(together[1], embedder.embed([TEXTS[1]])[0])


def test_a_model_directory_without_the_int8_graph_is_one_clear_error(
    model_dir: Path, tmp_path: Path
) -> None:
    for name in (bert_onnx.FLOAT_FILE, bert_onnx.TOKENIZER_FILE):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())

    with pytest.raises(ModelError) as caught:
        Embedder.load(tmp_path, model_id="tiny", int8=True)

    assert caught.value.code == "corrupt"
    assert "model.int8.onnx is missing" in caught.value.message
    assert "konak models pull tiny" in caught.value.message

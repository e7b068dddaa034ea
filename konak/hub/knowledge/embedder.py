"""Sentence embeddings on the hub: an ONNX sentence model run by onnxruntime, no torch.

The model directory is what ``konak models pull all-minilm-l6-v2`` installs
(``ModelStore(models_dir).path(model_id)``): ``model.onnx`` (and ``model.int8.onnx``) built by
``konak.edge_models.bert_onnx`` with sentence-transformers' mean pooling and L2
normalisation inside the graph, and the model's own ``tokenizer.json``. So this class only
tokenizes (word pieces, at most :data:`MAX_TOKENS`, longer text truncated as
sentence-transformers does), pads each batch to its longest text and runs the session.
See docs/embeddings.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from konak.edge_models.bert_onnx import FLOAT_FILE, INT8_FILE, TOKENIZER_FILE
from konak.edge_models.errors import CORRUPT, ModelError

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

MAX_TOKENS: Final = 256  # all-MiniLM-L6-v2's max_seq_length (sentence_bert_config.json)
BATCH_TEXTS: Final = 16  # texts per onnxruntime run (float); batches are formed by token length
# The int8 graph quantizes activations with one range per run (dynamic quantization), so a
# text's vector would depend on the texts batched with it: int8 runs one text at a time.
BATCH_TEXTS_INT8: Final = 1
OUTPUT: Final = "sentence_embedding"


class Embedder:
    """Turns texts into unit-length float32 vectors (one row per text)."""

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        *,
        model_id: str,
        batch_texts: int = BATCH_TEXTS,
    ) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self.model_id = model_id
        self.batch_texts = batch_texts
        shape = session.get_outputs()[0].shape
        self.dim: int = int(shape[-1])

    @classmethod
    def load(
        cls, model_dir: Path, *, model_id: str, threads: int = 1, int8: bool = False
    ) -> Embedder:
        """Open ``model_dir`` (the store's directory of the model) with ``threads`` intra-op
        threads; ``int8`` runs the quantized graph. A missing file is a ModelError."""
        from tokenizers import Tokenizer

        from konak.daemon.onnx_session import onnx_session

        graph = model_dir / (INT8_FILE if int8 else FLOAT_FILE)
        for path in (graph, model_dir / TOKENIZER_FILE):
            if not path.is_file():
                raise ModelError(
                    f"{model_id}: {path.name} is missing in {model_dir}; run "
                    f"`konak models pull {model_id}`",
                    code=CORRUPT,
                )
        tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.no_padding()  # the file pads everything to 128; we pad per batch
        session = onnx_session(graph, threads=threads, what=f"embedding model {model_id}")
        batch = BATCH_TEXTS_INT8 if int8 else BATCH_TEXTS
        embedder = cls(session, tokenizer, model_id=model_id, batch_texts=batch)
        logger.info(
            "embedding model %s loaded from %s (%d dims, %s, %d thread(s))",
            model_id,
            graph,
            embedder.dim,
            "int8" if int8 else "float32",
            threads,
        )
        return embedder

    def word_pieces(self, texts: Sequence[str]) -> list[int]:
        """How many word pieces the model sees of each text (with [CLS]/[SEP], truncated)."""
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row L2-normalised; mean pooling over word pieces."""
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        # Texts of similar length share a batch, so little of each run is padding.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.batch_texts):
            batch = order[start : start + self.batch_texts]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            (vectors,) = self._session.run([OUTPUT], {"input_ids": ids, "attention_mask": mask})
            out[batch] = vectors
        return out

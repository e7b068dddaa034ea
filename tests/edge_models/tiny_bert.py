"""A tiny random BERT checkpoint (and tokenizer) shaped like all-MiniLM-L6-v2, and an
independent numpy forward pass of it, for the conversion tests."""

from __future__ import annotations

import io
import json
import math
import zipfile
from typing import Any

import numpy as np

HIDDEN, HEADS, LAYERS, INTERMEDIATE, POSITIONS = 8, 2, 2, 16, 16
WORDS = ["the", "kitchen", "light", "turn", "on", "off", "guest", "wifi", "password", "bin", "day"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
CONFIG = {
    "model_type": "bert",
    "hidden_act": "gelu",
    "hidden_size": HIDDEN,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "intermediate_size": INTERMEDIATE,
    "vocab_size": len(VOCAB),
    "max_position_embeddings": POSITIONS,
    "layer_norm_eps": 1e-12,
}


def tensors(seed: int = 0) -> dict[str, np.ndarray]:
    """The checkpoint's tensors, named as Hugging Face's BertModel names them."""
    rng = np.random.default_rng(seed)

    def r(*shape: int) -> np.ndarray:
        return rng.normal(0, 0.5, shape).astype(np.float32)

    t = {
        "embeddings.word_embeddings.weight": r(len(VOCAB), HIDDEN),
        "embeddings.position_embeddings.weight": r(POSITIONS, HIDDEN),
        "embeddings.token_type_embeddings.weight": r(2, HIDDEN),
        "embeddings.LayerNorm.weight": 1 + r(HIDDEN) / 5,
        "embeddings.LayerNorm.bias": r(HIDDEN) / 5,
        "embeddings.position_ids": np.arange(POSITIONS, dtype=np.int64)[None],
    }
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        for name in ("query", "key", "value"):
            t[f"{p}.attention.self.{name}.weight"] = r(HIDDEN, HIDDEN)
            t[f"{p}.attention.self.{name}.bias"] = r(HIDDEN)
        t[f"{p}.attention.output.dense.weight"] = r(HIDDEN, HIDDEN)
        t[f"{p}.attention.output.dense.bias"] = r(HIDDEN)
        t[f"{p}.intermediate.dense.weight"] = r(INTERMEDIATE, HIDDEN)
        t[f"{p}.intermediate.dense.bias"] = r(INTERMEDIATE)
        t[f"{p}.output.dense.weight"] = r(HIDDEN, INTERMEDIATE)
        t[f"{p}.output.dense.bias"] = r(HIDDEN)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[f"{p}.{ln}.weight"] = 1 + r(HIDDEN) / 5
            t[f"{p}.{ln}.bias"] = r(HIDDEN) / 5
    return t


def tokenizer_json() -> bytes:
    """A BERT word-piece tokenizer over :data:`VOCAB` ([CLS] text [SEP], lower case)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    tok = Tokenizer(WordPiece({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return tok.to_str().encode()


def inputs(t: dict[str, np.ndarray] | None = None, **config: Any) -> dict[str, bytes]:
    """The converter's input files for a checkpoint (``config`` overrides config.json)."""
    from safetensors.numpy import save

    return {
        "model.safetensors": save(tensors() if t is None else t),
        "config.json": json.dumps({**CONFIG, **config}).encode(),
        "tokenizer.json": tokenizer_json(),
    }


def model_zip(files: dict[str, bytes]) -> bytes:
    """The files zipped as sentence-transformers' model.zip holds them."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, body in files.items():
            zf.writestr(name, body)
    return out.getvalue()


def forward(t: dict[str, np.ndarray], ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' output for this checkpoint, written out in numpy."""
    erf = np.vectorize(math.erf)

    def ln(x: np.ndarray, name: str) -> np.ndarray:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * t[f"{name}.weight"] + t[f"{name}.bias"]

    def dense(x: np.ndarray, name: str) -> np.ndarray:
        return x @ t[f"{name}.weight"].T + t[f"{name}.bias"]

    b, s = ids.shape
    d = HIDDEN // HEADS
    x = t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:s]
    x = ln(x + t["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
    bias = (1.0 - mask[:, None, None, :]) * -10000.0
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"

        def heads(y: np.ndarray) -> np.ndarray:
            return y.reshape(b, s, HEADS, d).transpose(0, 2, 1, 3)

        q, k, v = (heads(dense(x, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, HIDDEN)
        x = ln(dense(context, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
        inner = dense(x, f"{p}.intermediate.dense")
        gelu = 0.5 * inner * (1 + erf(inner / math.sqrt(2)))
        x = ln(dense(gelu, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
    m = mask[:, :, None].astype(np.float64)
    mean = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)

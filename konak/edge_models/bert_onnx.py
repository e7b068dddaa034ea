"""Convert a sentence-transformers BERT checkpoint (safetensors) to ONNX, without torch.

The pull of a model whose source says ``convert = "sentence-bert-onnx"`` reads
``model.safetensors``, ``config.json`` and ``tokenizer.json`` from that source and builds
the model's files here:

* ``model.onnx`` — the BERT encoder (word + position + token-type-0 embeddings and their
  LayerNorm; N encoder layers of masked self-attention, exact-erf GELU feed-forward and
  post-LayerNorms) followed by sentence-transformers' mean pooling over the attention mask
  and L2 normalisation. Inputs ``input_ids`` and ``attention_mask`` (int64, [batch, seq]);
  output ``sentence_embedding`` (float32, [batch, hidden]), unit length.
* ``model.int8.onnx`` — the same graph with every dense layer's weights quantized to
  uint8 (per tensor, asymmetric, onnxruntime's dynamic QUInt8 rule) and run as
  DynamicQuantizeLinear -> MatMulInteger, the form ``onnxruntime.quantization.
  quantize_dynamic`` emits. Built here with numpy rather than by calling onnxruntime so the
  bytes (and so the manifest's sha256) do not depend on the installed onnxruntime version.
* ``tokenizer.json`` — copied unchanged.

Both graphs are built with ``onnx.helper`` from fixed names in a fixed order and carry no
timestamps, so the same checkpoint always gives the same bytes: the pull verifies them by
sha256 like every downloaded file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from konak.edge_models.errors import CONVERSION_FAILED, ENGINE_UNAVAILABLE, ModelError, SourceError

if TYPE_CHECKING:
    import numpy as np

METHOD: Final = "sentence-bert-onnx"
INPUTS: Final = ("model.safetensors", "config.json", "tokenizer.json")
FLOAT_FILE: Final = "model.onnx"
INT8_FILE: Final = "model.int8.onnx"
TOKENIZER_FILE: Final = "tokenizer.json"
OPSET: Final = 17  # LayerNormalization is an ONNX op from 17 on
IR_VERSION: Final = 8  # what onnxruntime >= 1.17 (our floor) reads with opset 17
PRODUCER: Final = "konak-bert-onnx"
PRODUCER_VERSION: Final = "1"
MASK_BIAS: Final = -10000.0  # added to padded positions' attention scores (as BERT does)
POOL_EPS: Final = 1e-9  # sentence-transformers clamps the token count to this
NORM_EPS: Final = 1e-12  # torch.nn.functional.normalize's eps
QUINT8_MAX: Final = 255


@dataclass(frozen=True)
class BertConfig:
    """The parts of a Hugging Face BERT ``config.json`` the graph depends on."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    layer_norm_eps: float

    @classmethod
    def parse(cls, text: bytes) -> BertConfig:
        """Read config.json; a field missing or unsupported is a conversion error."""
        try:
            raw = json.loads(text)
            if raw.get("model_type", "bert") != "bert":
                raise ValueError(f"model_type {raw['model_type']!r} is not bert")
            if raw.get("hidden_act", "gelu") != "gelu":
                raise ValueError(f"hidden_act {raw['hidden_act']!r} is not gelu")
            if raw.get("position_embedding_type", "absolute") != "absolute":
                raise ValueError("only absolute position embeddings are supported")
            config = cls(
                hidden=int(raw["hidden_size"]),
                layers=int(raw["num_hidden_layers"]),
                heads=int(raw["num_attention_heads"]),
                intermediate=int(raw["intermediate_size"]),
                vocab=int(raw["vocab_size"]),
                max_positions=int(raw["max_position_embeddings"]),
                layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _failed(f"config.json: {exc}") from exc
        if config.hidden % config.heads:
            raise _failed("config.json: hidden_size is not a multiple of num_attention_heads")
        return config


def _failed(why: str) -> SourceError:
    return SourceError(f"cannot convert to ONNX: {why}", code=CONVERSION_FAILED)


def _need_packages() -> Any:
    """The onnx module; a clear error when the conversion's packages are missing."""
    try:
        import numpy  # noqa: F401 - checked here, imported where used
        import onnx
        import safetensors  # noqa: F401
    except ImportError as exc:
        raise ModelError(
            f"converting this model needs numpy, onnx and safetensors (konak[hub]): {exc}",
            code=ENGINE_UNAVAILABLE,
        ) from exc
    return onnx


class _Weights:
    """The checkpoint's tensors, checked for presence, shape and dtype as they are taken."""

    def __init__(self, tensors: Mapping[str, np.ndarray]) -> None:
        self._tensors = tensors
        self._prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        import numpy as np

        tensor = self._tensors.get(self._prefix + name)
        if tensor is None:
            raise _failed(f"model.safetensors has no tensor {self._prefix + name}")
        if tuple(tensor.shape) != shape:
            raise _failed(f"{name}: shape {tuple(tensor.shape)}, expected {shape}")
        if tensor.dtype not in (np.float32, np.float16):
            raise _failed(f"{name}: dtype {tensor.dtype}, expected float32")
        return np.ascontiguousarray(tensor, dtype=np.float32)


class _Graph:
    """Accumulates nodes and initializers under stable, readable names."""

    def __init__(self, onnx: Any, *, int8: bool) -> None:
        self.onnx = onnx
        self.int8 = int8
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(value, name))
        return name

    def scalar(self, name: str, value: float) -> str:
        import numpy as np

        return self.const(name, np.array(value, np.float32))

    def op(self, op_type: str, inputs: list[str], name: str, **attrs: Any) -> str:
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def ops(self, op_type: str, inputs: list[str], outputs: list[str], name: str) -> list[str]:
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outputs, name=name))
        return outputs

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
        """x @ weight.T + bias (weight as stored by torch: [out, in])."""
        import numpy as np

        w = np.ascontiguousarray(weight.T)
        b = self.const(f"{name}.bias", bias)
        if not self.int8:
            return self.op(
                "Add",
                [self.op("MatMul", [x, self.const(f"{name}.weight", w)], f"{name}.matmul"), b],
                name,
            )
        wq, scale, zero = quantize_uint8(w, axis=0)  # per output column
        xq, xs, xz = self.ops(
            "DynamicQuantizeLinear",
            [x],
            [f"{name}.x_q", f"{name}.x_scale", f"{name}.x_zero"],
            f"{name}.quantize",
        )
        acc = self.op(
            "MatMulInteger",
            [
                xq,
                self.const(f"{name}.weight_q", wq),
                xz,
                self.const(f"{name}.weight_zero", zero),
            ],
            f"{name}.matmul_int",
        )
        as_float = self.op("Cast", [acc], f"{name}.cast", to=self.onnx.TensorProto.FLOAT)
        both = self.op("Mul", [xs, self.const(f"{name}.weight_scale", scale)], f"{name}.scale")
        return self.op("Add", [self.op("Mul", [as_float, both], f"{name}.rescale"), b], name)


def quantize_uint8(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric uint8 with one scale and zero point per slice along ``axis`` (onnxruntime's
    QUInt8 rule: each range is widened to hold 0). Returns (q, scale, zero point)."""
    import numpy as np

    low = np.minimum(w.min(axis=axis), 0.0).astype(np.float32)
    high = np.maximum(w.max(axis=axis), 0.0).astype(np.float32)
    scale = np.where(high > low, (high - low) / np.float32(QUINT8_MAX), 1.0).astype(np.float32)
    zero = np.clip(np.rint(-low / scale), 0, QUINT8_MAX).astype(np.uint8)
    shape = [1] * w.ndim
    shape[1 - axis] = -1
    q = np.rint(w / scale.reshape(shape)) + zero.reshape(shape).astype(np.float32)
    return np.clip(q, 0, QUINT8_MAX).astype(np.uint8), scale, zero


def _layer_norm(g: _Graph, x: str, weights: _Weights, name: str, cfg: BertConfig) -> str:
    gamma = g.const(f"{name}.weight", weights.get(f"{name}.weight", (cfg.hidden,)))
    beta = g.const(f"{name}.bias", weights.get(f"{name}.bias", (cfg.hidden,)))
    return g.op("LayerNormalization", [x, gamma, beta], name, axis=-1, epsilon=cfg.layer_norm_eps)


def _encoder_layer(
    g: _Graph, x: str, mask_bias: str, weights: _Weights, i: int, cfg: BertConfig
) -> str:
    import numpy as np

    p = f"encoder.layer.{i}"
    h, d, f = cfg.hidden, cfg.hidden // cfg.heads, cfg.intermediate

    def dense(src: str, name: str, out_dim: int, in_dim: int) -> str:
        w = weights.get(f"{name}.weight", (out_dim, in_dim))
        return g.linear(src, w, weights.get(f"{name}.bias", (out_dim,)), name)

    heads_shape = g.const(f"{p}.heads_shape", np.array([0, 0, cfg.heads, d], np.int64))
    merged_shape = g.const(f"{p}.merged_shape", np.array([0, 0, h], np.int64))

    def split(t: str, name: str, perm: list[int]) -> str:
        return g.op(
            "Transpose",
            [g.op("Reshape", [t, heads_shape], f"{name}.heads")],
            f"{name}.t",
            perm=perm,
        )

    q = split(dense(x, f"{p}.attention.self.query", h, h), f"{p}.q", [0, 2, 1, 3])
    k = split(dense(x, f"{p}.attention.self.key", h, h), f"{p}.k", [0, 2, 3, 1])
    v = split(dense(x, f"{p}.attention.self.value", h, h), f"{p}.v", [0, 2, 1, 3])
    scale = g.scalar(f"{p}.score_scale", 1.0 / math.sqrt(d))
    scores = g.op("Mul", [g.op("MatMul", [q, k], f"{p}.qk"), scale], f"{p}.scores")
    probs = g.op(
        "Softmax", [g.op("Add", [scores, mask_bias], f"{p}.masked")], f"{p}.probs", axis=-1
    )
    context = g.op(
        "Transpose",
        [g.op("MatMul", [probs, v], f"{p}.context")],
        f"{p}.context.t",
        perm=[0, 2, 1, 3],
    )
    context = g.op("Reshape", [context, merged_shape], f"{p}.context.merged")
    attended = dense(context, f"{p}.attention.output.dense", h, h)
    x = _layer_norm(
        g,
        g.op("Add", [attended, x], f"{p}.attention.residual"),
        weights,
        f"{p}.attention.output.LayerNorm",
        cfg,
    )
    inner = dense(x, f"{p}.intermediate.dense", f, h)
    # GELU, exact: 0.5 * x * (1 + erf(x / sqrt(2)))
    scaled = g.op("Mul", [inner, g.scalar(f"{p}.gelu.inv_sqrt2", 1 / math.sqrt(2))], f"{p}.gelu.x")
    erf = g.op(
        "Add",
        [g.op("Erf", [scaled], f"{p}.gelu.erf"), g.scalar(f"{p}.gelu.one", 1.0)],
        f"{p}.gelu.1erf",
    )
    half = g.op("Mul", [inner, g.scalar(f"{p}.gelu.half", 0.5)], f"{p}.gelu.half_x")
    out = dense(g.op("Mul", [half, erf], f"{p}.gelu"), f"{p}.output.dense", h, f)
    return _layer_norm(
        g, g.op("Add", [out, x], f"{p}.output.residual"), weights, f"{p}.output.LayerNorm", cfg
    )


def _word_embeddings(g: _Graph, table: np.ndarray) -> str:
    """Gather each token's row; int8: rows stored as uint8 with a scale and zero per row."""
    import numpy as np

    if not g.int8:
        return g.op(
            "Gather",
            [g.const("embeddings.word_embeddings", table), "input_ids"],
            "embeddings.words",
        )
    q, scale, zero = quantize_uint8(table, axis=1)  # per row (token)
    rows = g.op(
        "Gather", [g.const("embeddings.word_embeddings_q", q), "input_ids"], "embeddings.rows_q"
    )
    rows = g.op("Cast", [rows], "embeddings.rows", to=g.onnx.TensorProto.FLOAT)
    zeros = g.const("embeddings.word_zero", zero.astype(np.float32)[:, None])
    scales = g.const("embeddings.word_scale", scale[:, None])
    centred = g.op(
        "Sub",
        [rows, g.op("Gather", [zeros, "input_ids"], "embeddings.zeros")],
        "embeddings.centred",
    )
    return g.op(
        "Mul",
        [centred, g.op("Gather", [scales, "input_ids"], "embeddings.scales")],
        "embeddings.words",
    )


def build_graph(tensors: Mapping[str, np.ndarray], cfg: BertConfig, *, int8: bool) -> Any:
    """The ONNX ModelProto of the encoder + mean pooling + L2 normalisation."""
    import numpy as np

    onnx = _need_packages()
    weights = _Weights(tensors)
    g = _Graph(onnx, int8=int8)
    h = cfg.hidden
    words = _word_embeddings(g, weights.get("embeddings.word_embeddings.weight", (cfg.vocab, h)))
    # Single sentences have token type 0 everywhere: fold that row into the positions.
    positions = weights.get("embeddings.position_embeddings.weight", (cfg.max_positions, h))
    type0 = weights.get("embeddings.token_type_embeddings.weight", (2, h))[0]
    pos_table = g.const("embeddings.position_and_type", (positions + type0).astype(np.float32))
    seq_len = g.op("Shape", ["input_ids"], "seq_len", start=1, end=2)
    zero = g.const("zero_1d", np.array([0], np.int64))
    pos = g.op("Slice", [pos_table, zero, seq_len, zero], "embeddings.positions")
    summed = g.op("Add", [words, pos], "embeddings.sum")
    x = _layer_norm(g, summed, weights, "embeddings.LayerNorm", cfg)

    mask = g.op("Cast", ["attention_mask"], "mask", to=onnx.TensorProto.FLOAT)
    inverted = g.op("Sub", [g.scalar("one", 1.0), mask], "mask.inverted")
    bias = g.op("Mul", [inverted, g.scalar("mask_bias_value", MASK_BIAS)], "mask.bias2d")
    mask_bias = g.op(
        "Unsqueeze", [bias, g.const("axes_1_2", np.array([1, 2], np.int64))], "mask.bias"
    )
    for i in range(cfg.layers):
        x = _encoder_layer(g, x, mask_bias, weights, i, cfg)

    # sentence-transformers Pooling(mean) and Normalize.
    axis1 = g.const("axis_1", np.array([1], np.int64))
    mask3 = g.op("Unsqueeze", [mask, g.const("axis_2", np.array([2], np.int64))], "pool.mask")
    total = g.op(
        "ReduceSum", [g.op("Mul", [x, mask3], "pool.masked"), axis1], "pool.sum", keepdims=0
    )
    count = g.op(
        "Max",
        [
            g.op("ReduceSum", [mask3, axis1], "pool.count_raw", keepdims=0),
            g.scalar("pool.eps", POOL_EPS),
        ],
        "pool.count",
    )
    mean = g.op("Div", [total, count], "pool.mean")
    norm = g.op("ReduceL2", [mean], "norm.l2", axes=[1], keepdims=1)
    norm = g.op("Max", [norm, g.scalar("norm.eps", NORM_EPS)], "norm.clamped")
    g.op("Div", [mean, norm], "sentence_embedding")

    ints = onnx.TensorProto.INT64
    graph = onnx.helper.make_graph(
        g.nodes,
        "sentence_bert",
        [
            onnx.helper.make_tensor_value_info("input_ids", ints, ["batch", "sequence"]),
            onnx.helper.make_tensor_value_info("attention_mask", ints, ["batch", "sequence"]),
        ],
        [
            onnx.helper.make_tensor_value_info(
                "sentence_embedding", onnx.TensorProto.FLOAT, ["batch", h]
            )
        ],
        initializer=g.initializers,
    )
    model = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
    )
    onnx.checker.check_model(model)
    return model


def convert(inputs: Mapping[str, bytes], outputs: tuple[str, ...]) -> dict[str, bytes]:
    """Build the files named in ``outputs`` (of model.onnx, model.int8.onnx, tokenizer.json)
    from the checkpoint's files; a broken or incomplete checkpoint is one conversion_failed line."""
    _need_packages()
    from safetensors import SafetensorError
    from safetensors.numpy import load as load_safetensors

    missing = [name for name in INPUTS if name not in inputs]
    if missing:
        raise _failed(f"the source has no {', '.join(missing)}")
    unknown = [name for name in outputs if name not in (FLOAT_FILE, INT8_FILE, TOKENIZER_FILE)]
    if unknown:
        raise _failed(
            f"cannot build {', '.join(unknown)} "
            f"(it builds {FLOAT_FILE}, {INT8_FILE}, {TOKENIZER_FILE})"
        )
    cfg = BertConfig.parse(inputs["config.json"])
    try:
        tensors = load_safetensors(inputs["model.safetensors"])
    except SafetensorError as exc:
        raise _failed(f"model.safetensors is not readable ({exc})") from exc
    builders: dict[str, Callable[[], bytes]] = {
        FLOAT_FILE: lambda: build_graph(tensors, cfg, int8=False).SerializeToString(),
        INT8_FILE: lambda: build_graph(tensors, cfg, int8=True).SerializeToString(),
        TOKENIZER_FILE: lambda: inputs["tokenizer.json"],
    }
    return {name: builders[name]() for name in outputs}

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from konak.edge_models.manifest import parse_manifest
from konak.edge_models.overlay import effective_manifest, render
from konak.edge_models.pull import Puller
from konak.edge_models.quantize import VariantMeasurement, decide, quantize_model
from konak.edge_models.store import ModelStore


def _base(tools: Any) -> Any:
    entry = tools.model_entry({"m.onnx": b"x"}, [{"kind": "url", "url": "http://h/{path}"}])
    entry["targets"] = ["cpu", "pi"]
    return tools.manifest_of({"m": entry}).model("m")


def test_a_smaller_but_slower_and_less_accurate_variant_is_not_chosen(tools: Any) -> None:
    measured = [
        VariantMeasurement("m", 63_000_000, 0.06, 0.19, "RTF"),
        VariantMeasurement("m-int8", 18_700_000, 0.07, 0.24, "RTF"),
    ]
    choice = decide(_base(tools), measured, "WER")
    assert dict(choice.per_target) == {"cpu": "m", "pi": "m"}
    assert "m-int8" in choice.reason
    assert "rejected" in choice.reason
    assert choice.measurements["m-int8.wer"] == pytest.approx(0.24)


def test_a_faster_variant_within_tolerance_is_chosen_for_the_measured_target(tools: Any) -> None:
    measured = [
        VariantMeasurement("m", 2_000_000, 2e-4, 0.0, "s/run"),
        VariantMeasurement("m-int8", 600_000, 1e-4, 0.01, "s/run"),
    ]
    choice = decide(_base(tools), measured, "max|diff|")
    assert dict(choice.per_target) == {"cpu": "m-int8", "pi": "m"}


def _tiny_onnx(path: Path) -> bytes:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(
        np.random.default_rng(0).normal(size=(96, 64)).astype(np.float32), "w"
    )
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 96])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path.read_bytes()


def test_quantize_installs_the_variant_and_records_it_in_the_overlay(
    store: ModelStore, file_server: Any, tools: Any, tmp_path: Path
) -> None:
    body = _tiny_onnx(tmp_path / "tiny.onnx")
    file_server.files["tiny.onnx"] = body
    manifest = tools.manifest_of(
        {
            "tiny": tools.model_entry(
                {"tiny.onnx": body}, [{"kind": "url", "url": file_server.url("{path}")}]
            )
        }
    )
    assert Puller(store, manifest).pull(["tiny"]).ok
    report = quantize_model(store, manifest, "tiny", modes=("int8", "float16"))
    assert [m.model_id for m in report.measurements] == ["tiny", "tiny-int8", "tiny-float16"]
    assert report.measurements[1].size_bytes < len(body)
    overlay = parse_manifest(tomllib.loads(store.overlay_path.read_text()), "overlay")
    variant = overlay.model("tiny-int8")
    assert variant.variant_of == "tiny"
    assert variant.quantization == "dynamic-int8"
    assert variant.files[0].sha256 == tools.sha(store.path("tiny-int8").read_bytes())
    assert overlay.choices["tiny"].reason.startswith("measured on this machine")
    assert store.verify() == []
    manifest_path = tmp_path / "m.toml"
    manifest_path.write_text(render(manifest.models, {}))
    merged = effective_manifest(store, manifest_path)
    assert merged.preferred("tiny", "pi") == "tiny"
    assert merged.model("tiny-int8").sources[0].kind == "derived"


def test_overlay_variants_of_models_the_manifest_lacks_are_ignored(
    store: ModelStore, tools: Any
) -> None:
    store.root.mkdir(parents=True)
    orphan = tools.model_entry(
        {"o.onnx": b"o"}, [{"kind": "derived", "base": "gone", "method": "int8"}]
    )
    orphan["variant_of"] = "gone"
    store.overlay_path.write_text(render(tools.manifest_of({"gone-int8": orphan}).models, {}))
    merged = effective_manifest(store, None)
    assert "gone-int8" not in merged.models
    assert "silero-vad-v6" in merged.models

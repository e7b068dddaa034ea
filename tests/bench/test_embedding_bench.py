from __future__ import annotations

from pathlib import Path

import pytest

from konak.bench import embedding
from konak.edge_models.settings import ENV_MODELS_DIR


def test_the_embedding_rate_is_measured_for_float_and_int8_on_one_thread(
    installed_models: Path,
) -> None:
    figures = embedding.run(quick=True)

    assert "error" not in figures, figures["error"]
    assert figures["threads"] == 1
    for variant in ("float", "int8"):
        assert figures[variant]["sentences_per_second"] > 0
        assert figures[variant]["short_sentence_p50_ms"] > 0
    assert figures["int8"]["file_mb"] < figures["float"]["file_mb"]
    table = "\n".join(embedding.markdown(figures))
    assert "| float | 90.3 |" in table
    assert "| int8 | 23.7 |" in table


def test_without_the_model_the_section_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_MODELS_DIR, str(tmp_path))

    figures = embedding.run(quick=True)

    assert "konak models pull all-minilm-l6-v2" in figures["error"]
    assert "Not measured:" in "\n".join(embedding.markdown(figures))

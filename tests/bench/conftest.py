"""The daemon benchmarks need the installed models (``make models``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from konak.edge_models.settings import ENV_MODELS_DIR


@pytest.fixture
def installed_models(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The models directory, exported for the benchmark and its child processes."""
    path = Path(os.environ.get(ENV_MODELS_DIR, Path(__file__).parents[2] / ".models"))
    if not (path / "models" / "piper-en-us-joe-medium").exists():
        pytest.fail(f"models are not installed in {path}: run `make models`")
    monkeypatch.setenv(ENV_MODELS_DIR, str(path))
    return path

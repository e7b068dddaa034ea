"""Edge models: manifest, fetch/verify/install into a content-addressed store, quantize, bench.

The daemon resolves every model file through :class:`konak.edge_models.store.ModelStore`.
"""

from __future__ import annotations

from konak.edge_models.errors import ModelError
from konak.edge_models.manifest import Manifest, Model, ModelFile, Source, load_manifest
from konak.edge_models.store import ModelStore

__all__ = ["Manifest", "Model", "ModelError", "ModelFile", "ModelStore", "Source", "load_manifest"]

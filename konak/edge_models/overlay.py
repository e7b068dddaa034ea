"""The local manifest overlay in the models directory (the packaged manifest is read-only)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from konak.edge_models.manifest import (
    SCHEMA_VERSION,
    Manifest,
    Model,
    VariantChoice,
    load_manifest,
    load_packaged,
    merge,
    parse_manifest,
    read_manifest,
)
from konak.edge_models.store import ModelStore

logger = logging.getLogger(__name__)


def effective_manifest(store: ModelStore, manifest_path: Path | None = None) -> Manifest:
    """The packaged (or given) manifest merged with the store's overlay, if any."""
    base = load_manifest(manifest_path) if manifest_path else load_packaged()
    if not store.overlay_path.is_file():
        return base
    overlay = load_manifest_lenient(store.overlay_path)
    orphans = [
        m.id for m in overlay.models.values() if m.variant_of and m.variant_of not in base.models
    ]
    if orphans:
        logger.warning(
            "overlay %s: ignoring variants of models this manifest lacks: %s",
            store.overlay_path,
            ", ".join(orphans),
        )
        overlay = dataclasses.replace(
            overlay,
            models={k: v for k, v in overlay.models.items() if k not in orphans},
            choices={k: v for k, v in overlay.choices.items() if k in base.models},
        )
    return merge(base, overlay)


def load_manifest_lenient(path: Path) -> Manifest:
    """Parse an overlay: like a manifest, but its sets may name packaged models."""
    return parse_manifest(read_manifest(path), str(path))


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else json.dumps(key)


def _model_table(model: Model) -> dict[str, Any]:
    table: dict[str, Any] = {
        "role": model.role,
        "engine": model.engine,
        "language": model.language,
        "description": model.description,
        "license": model.license,
        "commercial_use": model.commercial_use,
        "license_note": model.license_note,
        "targets": list(model.targets),
        "entry": model.entry,
        "variant_of": model.variant_of,
        "quantization": model.quantization,
        "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in model.files],
        "sources": [{k: v for k, v in vars(s).items() if v not in ("", 0)} for s in model.sources],
    }
    return {k: v for k, v in table.items() if v != ""}


def render(models: Mapping[str, Model], choices: Mapping[str, VariantChoice]) -> str:
    """The overlay document as TOML text."""
    lines = [
        "# Local overlay: models built on this machine (konak models quantize). Generated.",
        f"schema_version = {SCHEMA_VERSION}",
        "",
    ]
    for model_id, model in sorted(models.items()):
        lines.append(f"[models.{_key(model_id)}]")
        lines += [f"{_key(k)} = {_value(v)}" for k, v in _model_table(model).items()]
        lines.append("")
    for base, choice in sorted(choices.items()):
        lines.append(f"[choices.{_key(base)}]")
        lines.append(f"per_target = {_value(dict(choice.per_target))}")
        lines.append(f"reason = {_value(choice.reason)}")
        lines.append(f"measurements = {_value(dict(choice.measurements))}")
        lines.append("")
    return "\n".join(lines)


def update_overlay(store: ModelStore, models: list[Model], choice: VariantChoice | None) -> Path:
    """Add or replace overlay models (and a variant choice), written atomically."""
    existing_models: dict[str, Model] = {}
    existing_choices: dict[str, VariantChoice] = {}
    if store.overlay_path.is_file():
        current = load_manifest_lenient(store.overlay_path)
        existing_models.update(current.models)
        existing_choices.update(current.choices)
    existing_models.update({m.id: m for m in models})
    if choice is not None:
        existing_choices[choice.base] = choice
    text = render(existing_models, existing_choices)
    parse_manifest(tomllib.loads(text), "overlay (to be written)")  # never write a bad overlay
    store.root.mkdir(parents=True, exist_ok=True)
    tmp = store.overlay_path.with_name(f".{store.overlay_path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, store.overlay_path)
    logger.info("overlay %s updated", store.overlay_path)
    return store.overlay_path

"""Manifest schema migrations: each step takes a raw document one version up."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from konak.edge_models.errors import invalid_manifest

logger = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 2

Raw = dict[str, Any]


def _migrate_1_to_2(data: Raw) -> Raw:
    """v1 had ``license`` only (no commercial flag) and upstream ``urls`` strings only."""
    models: Raw = {}
    for model_id, raw in dict(data.get("models", {})).items():
        entry = dict(raw)
        license_id = str(entry.get("license", ""))
        entry.setdefault("commercial_use", "-NC" not in license_id and license_id != "NOASSERTION")
        if "sources" not in entry and "urls" in entry:
            entry["sources"] = [{"kind": "url", "url": u} for u in entry.pop("urls")]
        models[model_id] = entry
    return {**data, "schema_version": 2, "models": models}


MIGRATIONS: Final[Mapping[int, Callable[[Raw], Raw]]] = {1: _migrate_1_to_2}


def migrate(data: Raw, origin: str) -> Raw:
    """Bring a raw manifest document up to :data:`SCHEMA_VERSION`, one step at a time."""
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise invalid_manifest(origin, "schema_version: missing or not an integer")
    if version > SCHEMA_VERSION:
        raise invalid_manifest(
            origin,
            f"schema_version {version} is newer than this konak understands "
            f"({SCHEMA_VERSION}); upgrade konak",
        )
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise invalid_manifest(origin, f"no migration from schema_version {version}")
        logger.info("migrating manifest %s from schema %d to %d", origin, version, version + 1)
        data = step(data)
        version = int(data["schema_version"])
    return data

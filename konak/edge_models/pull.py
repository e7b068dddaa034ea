"""Pull models: license gate, sources in order, verify, install atomically."""

from __future__ import annotations

import errno
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from konak.edge_models.errors import (
    CHECKSUM_MISMATCH,
    CONVERSION_FAILED,
    DISK_FULL,
    LICENSE_NOT_ACCEPTED,
    SIZE_MISMATCH,
    SOURCE_UNREACHABLE,
    ModelError,
    SourceError,
)
from konak.edge_models.fetch import DownloadSettings
from konak.edge_models.manifest import Manifest, Model, ModelFile
from konak.edge_models.sources import FetchSession, RegistryClients
from konak.edge_models.store import ModelStore

logger = logging.getLogger(__name__)

# When every source failed, the error code reported is the most telling one.
_SEVERITY: Final = (CHECKSUM_MISMATCH, SIZE_MISMATCH, CONVERSION_FAILED, SOURCE_UNREACHABLE)
_DISK_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})


@dataclass(frozen=True)
class PullResult:
    """What happened to one model."""

    model_id: str
    status: str  # installed | up-to-date | skipped
    source: str = ""
    detail: str = ""


@dataclass(frozen=True)
class PullFailure:
    """A model that could not be pulled."""

    model_id: str
    error: ModelError


@dataclass
class PullReport:
    """Results of one pull command."""

    results: list[PullResult] = field(default_factory=list)
    failures: list[PullFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no model failed."""
        return not self.failures


def check_licenses(models: Sequence[Model], accepted: frozenset[str]) -> None:
    """Refuse models whose license forbids commercial use unless it was accepted explicitly."""
    refused = [m for m in models if not m.commercial_use and m.license not in accepted]
    if not refused:
        return
    licenses = sorted({m.license for m in refused})
    names = ", ".join(m.id for m in refused)
    flags = " ".join(f"--accept-license {lic}" for lic in licenses)
    raise ModelError(
        f"{names}: license {' and '.join(licenses)} does not allow commercial use; "
        f"accept it explicitly with {flags} (or KONAK_ACCEPT_LICENSES, or accept_licenses "
        "in the [models] config)",
        code=LICENSE_NOT_ACCEPTED,
    )


class Puller:
    """Pulls models of a manifest into a store."""

    def __init__(
        self,
        store: ModelStore,
        manifest: Manifest,
        *,
        accepted_licenses: frozenset[str] = frozenset(),
        clients: RegistryClients | None = None,
        download_settings: DownloadSettings | None = None,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.accepted_licenses = accepted_licenses
        self.clients = clients or RegistryClients()
        self.download_settings = download_settings or DownloadSettings()

    def pull(self, names: Sequence[str], *, force: bool = False) -> PullReport:
        """Pull every model named (sets expand); one model's failure does not stop the rest."""
        models = self.manifest.resolve(names)
        check_licenses(models, self.accepted_licenses)
        explicit = set(names)
        report = PullReport()
        with self.store.lock(), tempfile.TemporaryDirectory(prefix="konak-pull-") as work:
            session = FetchSession(self.store, Path(work), self.clients, self.download_settings)
            for model in models:
                try:
                    report.results.append(
                        self._pull_one(model, session, force=force, explicit=model.id in explicit)
                    )
                except ModelError as exc:
                    logger.error("%s", exc.message)
                    report.failures.append(PullFailure(model.id, exc))
        return report

    def _pull_one(
        self, model: Model, session: FetchSession, *, force: bool, explicit: bool
    ) -> PullResult:
        if not force and self.store.is_current(model):
            logger.info("%s: already installed (%s)", model.id, model.digest[:12])
            return PullResult(model.id, "up-to-date")
        errors: list[tuple[str, SourceError]] = []
        if model.files and all(self.store.has_blob(f) for f in model.files):
            return self._install(model, model.files, "local blob cache")
        for source in model.sources:
            try:
                files = session.fetch(model, source)
            except SourceError as exc:
                logger.warning("%s: %s failed: %s", model.id, source.describe(), exc.message)
                errors.append((source.describe(), exc))
                continue
            except OSError as exc:
                raise _os_error(model, exc) from exc
            return self._install(model, files, source.describe())
        return self._all_failed(model, errors, explicit=explicit)

    def _install(self, model: Model, files: tuple[ModelFile, ...], source: str) -> PullResult:
        try:
            record = self.store.install(model, files, source)
        except OSError as exc:
            raise _os_error(model, exc) from exc
        logger.info(
            "%s: installed %d file(s), %d bytes, from %s",
            model.id,
            len(files),
            record.size_bytes,
            source,
        )
        return PullResult(model.id, "installed", source=source)

    def _all_failed(
        self, model: Model, errors: list[tuple[str, SourceError]], *, explicit: bool
    ) -> PullResult:
        reasons = "; ".join(f"[{i + 1}] {exc.message}" for i, (_, exc) in enumerate(errors))
        codes = {exc.code for _, exc in errors}
        upstream_only = not any(s.is_registry for s in model.sources)
        if upstream_only and codes == {SOURCE_UNREACHABLE}:
            message = (
                f"{model.id}: skipped: upstream only (no registry mirror) and its source "
                f"is unreachable from here: {reasons}"
            )
            if explicit:
                raise ModelError(message, code=SOURCE_UNREACHABLE)
            logger.warning("%s", message)
            return PullResult(model.id, "skipped", detail=message)
        code = next((c for c in _SEVERITY if c in codes), SOURCE_UNREACHABLE)
        raise ModelError(
            f"{model.id}: no source worked ({reasons}); the installed version, "
            "if any, is unchanged",
            code=code,
        )


def _os_error(model: Model, exc: OSError) -> ModelError:
    if exc.errno in _DISK_FULL_ERRNOS:
        return ModelError(
            f"{model.id}: disk full while writing {exc.filename or 'the store'}; "
            "the installed version, if any, is unchanged",
            code=DISK_FULL,
        )
    return ModelError(f"{model.id}: cannot write the store: {exc}", code="store_error")

"""``update_models`` from the hub: pull and verify models through ``konak.edge_models``,
load the engines built from those that changed, and hand them to the daemon, all or nothing.

Runs on a thread of its own, never in the audio loop. The order is:

1. pull the named set (or, without one, every model the daemon's settings use) from the
   manifest the device has (the packaged one with the store's overlay): a model already
   current is not fetched again, and a licence the device's ``[models] accept_licenses``
   does not list is refused before anything is fetched;
2. re-hash every file of the models that changed (``ModelStore.verify``);
3. load and warm the engines built from a changed model that the daemon runs;

and any failure rolls each changed model back to the version before (``ModelStore.rollback``),
so the store again holds what the running engines were loaded from, and the result says
``failed`` with the error's code. The engines are swapped by the daemon between turns.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from konak.daemon.engines import Engines, engine_models, reload_engines
from konak.daemon.settings import Settings
from konak.edge_models.errors import ModelError
from konak.edge_models.overlay import effective_manifest
from konak.edge_models.pull import Puller
from konak.edge_models.settings import ModelSettings
from konak.edge_models.store import ModelStore
from konak.errors import KonakError
from konak.protocol import ModelsUpdate

logger = logging.getLogger(__name__)

DIGEST_CHARS: Final = 12
VERIFY_FAILED: Final = "verify_failed"
LOAD_FAILED: Final = "load_failed"


@dataclass(frozen=True)
class Update:
    """What an update produced: the report for the hub, and the engines to swap in (None
    when nothing the daemon runs changed, or on failure)."""

    report: ModelsUpdate
    engines: Engines | None = None


def models_in_use(settings: Settings) -> set[str]:
    """Every model id the daemon's engines are built from."""
    return set().union(*engine_models(settings).values())


def digests(store: ModelStore, model_ids: set[str]) -> dict[str, str]:
    """Model id -> the first digits of its current version's digest ('' when not installed)."""
    found = {}
    for model_id in sorted(model_ids):
        record = store.record(model_id)
        found[model_id] = record.digest[:DIGEST_CHARS] if record is not None else ""
    return found


class ModelUpdater:
    """Carries out ``update_models`` commands for one daemon."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        *,
        environ: dict[str, str] | None = None,
        puller: Callable[[ModelStore, Settings], Puller] | None = None,
    ) -> None:
        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)
        self._puller = puller or self._default_puller

    def _default_puller(self, store: ModelStore, settings: Settings) -> Puller:
        accepted = ModelSettings.resolve(
            models_dir=str(settings.models_dir),
            accept_licenses=settings.accept_licenses,
            environ=self.environ,
            config={},
        ).accepted_licenses
        return Puller(store, effective_manifest(store), accepted_licenses=accepted)

    def update(self, command_id: str, model_set: str | None, engines: Engines) -> Update:
        """Pull, verify and load; never raises for a model, store or engine problem."""
        settings = self.settings()
        store = ModelStore(settings.models_dir)
        tracked = models_in_use(settings)
        names = [model_set] if model_set else sorted(tracked)
        before = digests(store, tracked)
        changed: list[str] = []
        try:
            puller = self._puller(store, settings)
            tracked |= {m.id for m in puller.manifest.resolve(names)}
            before = digests(store, tracked)
            report = puller.pull(names)
            changed = [m for m, d in digests(store, tracked).items() if d != before[m]]
            if report.failures:
                first = report.failures[0]
                raise ModelError(first.error.message, code=first.error.code)
            problems = store.verify(changed) if changed else []
            if problems:
                raise ModelError(
                    "; ".join(f"{p.model_id}: {p.path}: {p.reason}" for p in problems),
                    code=VERIFY_FAILED,
                )
            swap = sorted(
                name for name, ids in engine_models(settings).items() if ids & set(changed)
            )
            fresh = None
            if swap:
                logger.info("update_models %s: loading %s", command_id, ", ".join(swap))
                try:
                    fresh = reload_engines(settings, engines, swap)
                except KonakError as exc:
                    raise ModelError(exc.message, code=LOAD_FAILED) from exc
        except KonakError as exc:
            self._roll_back(store, changed)
            logger.error(
                "update_models %s failed [%s]: %s; the models in use are unchanged",
                command_id,
                exc.code,
                exc.message,
            )
            return Update(self._report(command_id, "failed", before, exc.code, exc.message))
        after = digests(store, tracked)
        outcome = "ok" if after != before else "unchanged"
        logger.info(
            "update_models %s: %s (%s)",
            command_id,
            outcome,
            ", ".join(f"{m} {d}" for m, d in after.items() if before.get(m) != d) or "no change",
        )
        return Update(self._report(command_id, outcome, after), fresh)

    @staticmethod
    def _roll_back(store: ModelStore, changed: list[str]) -> None:
        for model_id in changed:
            try:
                store.rollback(model_id)
                logger.info("update_models: %s rolled back to its previous version", model_id)
            except (KonakError, OSError) as exc:
                # A model new to this device has no previous version; the daemon never ran it.
                logger.warning("update_models: %s not rolled back: %s", model_id, exc)

    @staticmethod
    def _report(
        command_id: str,
        outcome: str,
        models: dict[str, str],
        error: str | None = None,
        detail: str | None = None,
    ) -> ModelsUpdate:
        return ModelsUpdate(
            command_id=command_id,
            outcome=outcome,  # type: ignore[arg-type]
            error=error,
            detail=detail[:200] if detail else None,
            models=models,
            finished_at=time.time(),
        )

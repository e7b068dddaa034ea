"""The knowledge jobs' records: what a job is (``Job``), the runner's errors, and the small
SQLite file their last known states are kept in (``JobStore``), so a restarted hub finds the
jobs it interrupted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from konak.hub.knowledge.formats import Format
from konak.hub.knowledge.types import KnowledgeError
from konak.storage.sqlite import Schema, connect, transaction

JobKind = Literal["import", "export"]
JobState = Literal["running", "succeeded", "failed", "cancelled"]
KEEP_JOBS: Final = 100  # finished jobs kept per tenant (the newest)
MAX_JOBS_PAGE: Final = 100
INTERRUPTED: Final = "the hub stopped while the job was running"


class JobError(KnowledgeError):
    """Base of the job runner's refusals."""

    code = "job_error"


class JobNotFound(JobError):
    """No such job in this tenant (another tenant's jobs look the same)."""

    code = "job_not_found"


class JobFinished(JobError):
    """The job has ended already: there is nothing to cancel."""

    code = "job_finished"


class JobCancelled(JobError):
    """The job was cancelled (nothing of an import was written)."""

    code = "job_cancelled"


class JobInterrupted(JobError):
    """The job ended because the hub is stopping (nothing of an import was written)."""

    code = "job_interrupted"


class TooManyJobs(JobError):
    """The tenant runs as many jobs as it may at once."""

    code = "too_many_jobs"


class ImportTooLarge(JobError):
    """The upload is over ``max_import_bytes``."""

    code = "import_too_large"


class SpoolFailed(JobError):
    """The hub could not stage the upload (its disk)."""

    code = "spool_failed"


class UploadBroken(JobError):
    """The upload ended before its end (the client left, or sent a broken body)."""

    code = "upload_broken"


@dataclass
class Job:
    """One import or export: what it is, where it is, and how far it got."""

    job_id: str
    tenant: str
    kind: JobKind
    collection: str
    format: Format
    created_at: float
    state: JobState = "running"
    phase: str = "receiving"  # import: receiving, writing; export: sending
    finished_at: float | None = None
    bytes: int = 0  # received (import) or sent (export)
    lines: int = 0  # lines read from the upload
    documents: int = 0  # import: staged documents; export: passages sent
    written: int = 0  # import: documents upserted in the transaction
    passages: int = 0  # import: passages those documents became
    error: dict[str, Any] | None = None
    cancel_requested: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False, compare=False)
    last_event: float = field(default=0.0, repr=False, compare=False)
    ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    def view(self) -> dict[str, Any]:
        """The job as the API and the event stream show it."""
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "collection": self.collection,
            "format": self.format,
            "state": self.state,
            "phase": self.phase,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "bytes": self.bytes,
            "lines": self.lines,
            "documents": self.documents,
            "written": self.written,
            "passages": self.passages,
            "error": self.error,
        }


SCHEMA: Final = Schema(
    "the knowledge jobs database",
    (
        """
        CREATE TABLE jobs (
            tenant_id TEXT NOT NULL,
            job_id TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at REAL NOT NULL,
            view TEXT NOT NULL,
            PRIMARY KEY (tenant_id, job_id)
        );
        CREATE INDEX jobs_by_tenant ON jobs (tenant_id, created_at);
        """,
    ),
    KnowledgeError,
)


class JobStore:
    """The jobs' last known state, keyed by tenant (a restart reads it)."""

    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA)

    def save(self, tenant: str, view: Mapping[str, Any]) -> None:
        """Record a job's state; keep only the tenant's ``KEEP_JOBS`` newest."""
        with transaction(self._db):
            self._db.execute(
                "INSERT OR REPLACE INTO jobs (tenant_id, job_id, state, created_at, view)"
                " VALUES (?, ?, ?, ?, ?)",
                (tenant, view["job_id"], view["state"], view["created_at"], json.dumps(view)),
            )
            self._db.execute(
                "DELETE FROM jobs WHERE tenant_id = ? AND state != 'running' AND job_id NOT IN"
                " (SELECT job_id FROM jobs WHERE tenant_id = ? ORDER BY created_at DESC LIMIT ?)",
                (tenant, tenant, KEEP_JOBS),
            )

    def get(self, tenant: str, job_id: str) -> dict[str, Any] | None:
        """A job of ``tenant``, or None."""
        row = self._db.execute(
            "SELECT view FROM jobs WHERE tenant_id = ? AND job_id = ?", (tenant, job_id)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def list(self, tenant: str, limit: int) -> list[dict[str, Any]]:
        """The tenant's jobs, newest first."""
        rows = self._db.execute(
            "SELECT view FROM jobs WHERE tenant_id = ? ORDER BY created_at DESC LIMIT ?",
            (tenant, limit),
        ).fetchall()
        return [dict(json.loads(row[0])) for row in rows]

    def fail_running(self, now: float) -> int:
        """Mark every job recorded as running ``failed`` (its process is gone)."""
        with transaction(self._db):
            rows = self._db.execute(
                "SELECT tenant_id, job_id, view FROM jobs WHERE state = 'running'"
            ).fetchall()
            for tenant, job_id, raw in rows:
                view = {
                    **json.loads(raw),
                    "state": "failed",
                    "finished_at": now,
                    "error": {"code": "job_interrupted", "message": INTERRUPTED},
                }
                self._db.execute(
                    "UPDATE jobs SET state = 'failed', view = ? WHERE tenant_id = ? AND job_id = ?",
                    (json.dumps(view), tenant, job_id),
                )
        return len(rows)

    def close(self) -> None:
        """Close the file."""
        self._db.close()

"""Closing the service waits for backend calls still running, even those whose caller was
cancelled: closing a connection under a running SQLite call crashes the process."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from konak.hub.knowledge.service import KnowledgeService
from konak.hub.knowledge.settings import KnowledgeSettings
from konak.hub.quotas import TenantQuota


def over(backend: object, tmp_path: Any) -> KnowledgeService:
    """A service on a stand-in backend, without a model."""
    return KnowledgeService(
        KnowledgeSettings(directory=tmp_path),
        backend,  # type: ignore[arg-type]
        lambda _tenant: TenantQuota(),
        None,
    )


class SlowBackend:
    def __init__(self) -> None:
        self.started = threading.Event()
        self.events: list[str] = []

    def list_collections(self, tenant: str) -> list[Any]:
        self.started.set()
        time.sleep(0.3)
        self.events.append("call ended")
        return []

    def close(self) -> None:
        self.events.append("closed")


async def test_close_waits_for_a_call_whose_caller_was_cancelled(tmp_path: Any) -> None:
    backend = SlowBackend()
    service = over(backend, tmp_path)
    caller = asyncio.create_task(service.list_collections("acme"))
    await asyncio.to_thread(backend.started.wait, 5)
    caller.cancel()
    await asyncio.gather(caller, return_exceptions=True)
    assert caller.cancelled()
    await service.close()
    assert backend.events == ["call ended", "closed"]


class SlowBegin:
    """A backend whose transaction takes a while to begin."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.events: list[str] = []

    def begin(self, tenant: str, collection: str) -> SlowBegin:
        self.started.set()
        time.sleep(0.3)
        self.events.append("begun")
        return self

    def rollback(self) -> None:
        self.events.append("rolled back")

    def commit(self) -> None:
        self.events.append("committed")

    def close(self) -> None:
        self.events.append("closed")


async def test_a_transaction_cancelled_while_it_begins_is_rolled_back(tmp_path: Any) -> None:
    backend = SlowBegin()
    service = over(backend, tmp_path)

    async def importer() -> None:
        async with service.transaction("acme", "notes"):
            raise AssertionError("the transaction was cancelled before it began")

    task = asyncio.create_task(importer())
    await asyncio.to_thread(backend.started.wait, 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await service.close()
    assert backend.events == ["begun", "rolled back", "closed"]

"""A semantic cache of spoken replies to read-only questions, per tenant.

A question whose vector is within ``threshold`` (cosine) of a cached one gets the cached
reply until its TTL ends. A write to any of the tenant's collections drops all of the
tenant's entries (``invalidate`` is the service's ``on_change`` callback): a new passage
in another collection may now answer a cached question better. Entries never leave their
tenant: each tenant has its own list, and a lookup reads only the caller's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

# Oldest entries go first beyond this many per tenant (a linear scan stays well under 1 ms).
MAX_ENTRIES_PER_TENANT: Final = 512


@dataclass(frozen=True, slots=True)
class _Entry:
    vector: np.ndarray
    reply: str
    expires_at: float


class SemanticCache:
    """Replies keyed by question vectors, per tenant, with a TTL and write invalidation."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES_PER_TENANT,
    ) -> None:
        self._clock = clock
        self._max = max_entries
        self._entries: dict[str, list[_Entry]] = {}
        self._generation: dict[str, int] = {}
        # on_change may be called from the service's worker thread.
        self._lock = threading.Lock()

    def generation(self, tenant: str) -> int:
        """A number that changes whenever the tenant's entries are invalidated: read it
        before a search, give it to ``put``, and an answer found before a write is dropped."""
        with self._lock:
            return self._generation.get(tenant, 0)

    def get(self, tenant: str, vector: np.ndarray, threshold: float) -> str | None:
        """The cached reply to the nearest question at least ``threshold`` similar, if any."""
        now = self._clock()
        with self._lock:
            entries = [e for e in self._entries.get(tenant, ()) if e.expires_at > now]
            if entries:
                self._entries[tenant] = entries
            else:
                self._entries.pop(tenant, None)
                return None
        scores = np.stack([e.vector for e in entries]) @ vector
        best = int(np.argmax(scores))
        return entries[best].reply if float(scores[best]) >= threshold else None

    def put(
        self, tenant: str, vector: np.ndarray, reply: str, ttl_seconds: float, generation: int
    ) -> bool:
        """Keep a reply for ``ttl_seconds``; refused (False) when the tenant's collections
        changed since ``generation`` was read."""
        if ttl_seconds <= 0:
            return False
        entry = _Entry(np.asarray(vector, dtype=np.float32), reply, self._clock() + ttl_seconds)
        with self._lock:
            if self._generation.get(tenant, 0) != generation:
                return False
            entries = self._entries.setdefault(tenant, [])
            entries.append(entry)
            del entries[: max(0, len(entries) - self._max)]
        return True

    def invalidate(self, tenant: str, collection: str | None = None) -> None:
        """Drop every entry of the tenant (a collection of it changed)."""
        with self._lock:
            self._entries.pop(tenant, None)
            self._generation[tenant] = self._generation.get(tenant, 0) + 1

    def size(self, tenant: str) -> int:
        """How many entries the tenant has (expired ones included until the next lookup)."""
        with self._lock:
            return len(self._entries.get(tenant, ()))

"""Tenant quotas as inference isolation: per tenant at most N concurrent tool calls, M intents
a minute and D enrolled devices, and at most V vectors and B bytes of knowledge (enforced by
``konak.hub.knowledge.service``) (``[quotas]`` of hub.toml).

Each tenant has its own bucket and its own count of running tool calls, so a tenant that
floods the hub is answered "limit reached" while other tenants' turns go on; nothing one
tenant does can take another tenant's share.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any, Final

from pydantic import model_validator
from pydantic.dataclasses import dataclass

from konak.config import SETTINGS, Int, validate
from konak.errors import ConfigError
from konak.hub.metrics import HubMetrics
from konak.hub.security.ratelimit import Clock, TokenBuckets
from konak.hub.security.settings import RateLimit

LIMIT_TEXT: Final = "Sorry, the limit for this home is reached. Please try again in a moment."
FIELDS: Final = (
    "max_concurrent_tool_calls",
    "intents_per_minute",
    "max_devices",
    "max_vectors",
    "max_vector_bytes",
)


@dataclass(frozen=True, slots=True, config=SETTINGS)
class TenantQuota:
    """One tenant's limits; None is unlimited."""

    max_concurrent_tool_calls: Int | None = None
    intents_per_minute: Int | None = None
    max_devices: Int | None = None
    max_vectors: Int | None = None  # passages stored (all collections); checked before writing
    max_vector_bytes: Int | None = None  # their vectors, text and metadata, in bytes

    def __post_init__(self) -> None:
        for name in FIELDS:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"quotas: {name} must be >= 1 (leave it out for no limit)")


@dataclass(frozen=True, slots=True, config=SETTINGS)
class QuotaSettings:
    """``default`` applies to every tenant; ``tenants`` override it field by field."""

    default: TenantQuota = field(default_factory=TenantQuota)
    tenants: Mapping[str, TenantQuota] = field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_file(cls, data: Any) -> Any:
        """``[quotas]`` holds the default's keys; ``[quotas.tenants.<id>]`` overrides them."""
        if not isinstance(data, dict):
            return data
        raw = {k: v for k, v in data.items() if k != "tenants"}
        tenants = data.get("tenants", {})
        if isinstance(tenants, dict):
            tenants = {t: {**raw, **q} if isinstance(q, dict) else q for t, q in tenants.items()}
        return {"default": validate(raw, TenantQuota, within="quotas"), "tenants": tenants}

    def of(self, tenant: str) -> TenantQuota:
        """The effective quota of a tenant."""
        return self.tenants.get(tenant, self.default)


def parse_quotas(raw: Mapping[str, Any]) -> QuotaSettings:
    """Build QuotaSettings from the ``[quotas]`` table (``[quotas.tenants.<id>]`` overrides)."""
    return validate(dict(raw), QuotaSettings, within="quotas")


class Quotas:
    """The running quotas; reads the current settings on every decision (so a reload applies
    at once) and counts every refusal in ``konak_hub_quota_rejections``."""

    def __init__(
        self,
        settings: Callable[[], QuotaSettings],
        metrics: HubMetrics,
        clock: Clock = time.monotonic,
        on_refused: Callable[[str, str], None] | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._on_refused = on_refused  # told (tenant, quota): the fleet monitor's alert
        self._buckets: dict[tuple[str, int], TokenBuckets] = {}
        self._running: dict[str, int] = {}

    def _refuse(self, tenant: str, quota: str) -> bool:
        self._metrics.quota_rejections.labels(tenant, quota).inc()
        if self._on_refused is not None:
            self._on_refused(tenant, quota)
        return False

    def admit_intent(self, tenant: str) -> bool:
        """Spend one of the tenant's intents of this minute; False when none is left."""
        per_minute = self._settings().of(tenant).intents_per_minute
        if per_minute is None:
            return True
        buckets = self._buckets.get((tenant, per_minute))
        if buckets is None:
            buckets = TokenBuckets(RateLimit(per_minute, per_minute / 60.0), self._clock)
            self._buckets[(tenant, per_minute)] = buckets
        return buckets.take(tenant) == 0.0 or self._refuse(tenant, "intents_per_minute")

    def start_calls(self, tenant: str, count: int) -> bool:
        """Take ``count`` of the tenant's tool-call slots (all or none); pair with
        ``end_calls``. False when they would exceed the tenant's concurrency."""
        limit = self._settings().of(tenant).max_concurrent_tool_calls
        running = self._running.get(tenant, 0)
        if limit is not None and running + count > limit:
            return self._refuse(tenant, "max_concurrent_tool_calls")
        self._running[tenant] = running + count
        return True

    def end_calls(self, tenant: str, count: int) -> None:
        """Give back slots taken by ``start_calls``."""
        left = self._running.get(tenant, 0) - count
        if left > 0:
            self._running[tenant] = left
        else:
            self._running.pop(tenant, None)

    def running(self, tenant: str) -> int:
        """Tool calls the tenant has running now."""
        return self._running.get(tenant, 0)

"""Token buckets per client IP, per user and per route, and the progressive lock-out after
failed logins: in this process, or in Redis shared by several hub workers
(``konak.hub.auth.redis_limits``, ``konak.hub.auth.redis_lockout``)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from konak.hub.auth.errors import RateLimited
from konak.hub.auth.settings import AuthSettings, RateLimit

MAX_KEYS: Final = 100_000  # bound on remembered clients; the least recently seen go first

Clock = Callable[[], float]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One bucket per key; ``take`` spends a token or says how long until one is back."""

    def __init__(self, limit: RateLimit, clock: Clock = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """0.0 when allowed, else the seconds to wait."""
        now = self._clock()
        bucket = self._buckets.pop(key, None) or _Bucket(float(self._limit.burst), now)
        bucket.tokens = min(
            float(self._limit.burst),
            bucket.tokens + (now - bucket.updated) * self._limit.per_second,
        )
        bucket.updated = now
        self._buckets[key] = bucket
        if len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._limit.per_second


class Buckets(Protocol):
    """Where the buckets live: ``take`` spends a token of ``scope``/``key`` under ``limit``
    and answers 0.0, or the seconds until a token is back."""

    async def take(self, scope: str, key: str, limit: RateLimit) -> float: ...


class MemoryBuckets:
    """Buckets in this process (the default)."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._scopes: dict[tuple[str, RateLimit], TokenBuckets] = {}

    async def take(self, scope: str, key: str, limit: RateLimit) -> float:
        """Spend a token of the in-process bucket."""
        buckets = self._scopes.get((scope, limit))
        if buckets is None:
            buckets = self._scopes[(scope, limit)] = TokenBuckets(limit, self._clock)
        return buckets.take(key)


class RateLimiter:
    """The limits of the API: per IP, per user, and per named route on top."""

    def __init__(self, settings: AuthSettings, buckets: Buckets | None = None) -> None:
        self._settings = settings
        self._buckets: Buckets = buckets or MemoryBuckets()

    async def check_ip(self, ip: str, route: str | None) -> None:
        """Raise RateLimited when this IP is over its limit (or the route's)."""
        wait = await self._buckets.take("ip", ip, self._settings.ip_limit)
        limit = self._settings.route_limits.get(route or "")
        if not wait and limit is not None:
            wait = await self._buckets.take(f"route:{route}", ip, limit)
        if wait:
            raise RateLimited("too many requests", retry_after_seconds=wait)

    async def check_user(self, user_id: str) -> None:
        """Raise RateLimited when this user is over its limit."""
        wait = await self._buckets.take("user", user_id, self._settings.user_limit)
        if wait:
            raise RateLimited("too many requests", retry_after_seconds=wait)


def raise_if_locked(wait_seconds: float) -> None:
    """Raise RateLimited (code ``locked_out``) when there is a wait."""
    if wait_seconds > 0:
        raise RateLimited(
            "too many failed logins; try again later",
            retry_after_seconds=wait_seconds,
            code="locked_out",
        )


@dataclass(slots=True)
class _Failures:
    count: int
    locked_until: float


class LoginLockout(Protocol):
    """Where the lock-out counters live (this process or Redis): ``check`` raises
    RateLimited (``locked_out``) while a key is locked, ``failed`` counts a failure against
    each key, ``succeeded`` forgets the keys' failures."""

    async def check(self, *keys: str) -> None: ...

    async def failed(self, *keys: str) -> None: ...

    async def succeeded(self, *keys: str) -> None: ...


def lockout_seconds(settings: AuthSettings, count: int) -> float:
    """How long ``count`` failures lock a key out (0.0 below the threshold)."""
    over = count - settings.lockout_after_failures
    if over < 0:
        return 0.0
    return float(min(settings.lockout_initial_seconds * 2.0**over, settings.lockout_max_seconds))


class Lockout:
    """In this process: after ``lockout_after_failures`` failed logins for an account (or
    from an IP), refuse logins for an interval that doubles with each further failure, up to
    a maximum."""

    def __init__(self, settings: AuthSettings, clock: Clock = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    async def check(self, *keys: str) -> None:
        """Raise RateLimited (code ``locked_out``) while any of ``keys`` is locked."""
        now = self._clock()
        wait = max((f.locked_until - now for k in keys if (f := self._failures.get(k))), default=0)
        raise_if_locked(wait)

    async def failed(self, *keys: str) -> None:
        """Count a failed login against each key."""
        now = self._clock()
        for key in keys:
            entry = self._failures.pop(key, None) or _Failures(0, 0.0)
            entry.count += 1
            seconds = lockout_seconds(self._settings, entry.count)
            if seconds:
                entry.locked_until = now + seconds
            self._failures[key] = entry
            if len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    async def succeeded(self, *keys: str) -> None:
        """Forget the failures of an account after a successful login."""
        for key in keys:
            self._failures.pop(key, None)

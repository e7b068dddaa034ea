"""Token buckets per client address, per user and per route, and the lock-out after failed
logins: in this process, or in Redis shared by several hub workers
(``konak.hub.security.redis_limits``, ``konak.hub.security.redis_lockout``).

Clients are keyed by address (an IPv6 client by its /64, which one host can rotate through
freely); which address a request comes from is the HTTP API's to say
(``konak.hub.api.http.client_address``). The lock-out is keyed by account *and* address:
an attacker's failures lock the attacker's address out of that account, never the owner
elsewhere nor the other users behind the same address. Failures from every address together
only slow the account down (a short, capped wait), so they cannot lock its owner out either.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from konak.hub.security.errors import RateLimited
from konak.hub.security.settings import AuthSettings, RateLimit

MAX_KEYS: Final = 100_000  # bound on remembered clients; the least recently seen go first
IPV6_PREFIX_LENGTH: Final = 64  # what one subscriber gets, and can rotate through

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
        key = address_key(ip)
        wait = await self._buckets.take("ip", key, self._settings.ip_limit)
        limit = self._settings.route_limits.get(route or "")
        if not wait and limit is not None:
            wait = await self._buckets.take(f"route:{route}", key, limit)
        if wait:
            raise RateLimited("too many requests", retry_after_seconds=wait)

    async def may_mail(self, address: str) -> bool:
        """Whether another mail (reset link, invitation) may go to ``address`` now."""
        return not await self._buckets.take("mail", address, self._settings.mail_limit)

    async def check_user(self, user_id: str) -> None:
        """Raise RateLimited when this user is over its limit."""
        wait = await self._buckets.take("user", user_id, self._settings.user_limit)
        if wait:
            raise RateLimited("too many requests", retry_after_seconds=wait)


# -- client addresses ------------------------------------------------------------------------
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str) -> Address | None:
    """An address from a peer or a forwarding header's node (``[v6]:port``, ``v4:port``)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_key(text: str) -> str:
    """The key a client address is counted under: an IPv4 address, or an IPv6 /64."""
    address = parse_address(text)
    if address is None:
        return text
    if isinstance(address, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((address, IPV6_PREFIX_LENGTH), strict=False)
        return str(network)
    return str(address)


# -- the lock-out --------------------------------------------------------------------------
def raise_if_locked(wait_seconds: float) -> None:
    """Raise RateLimited (code ``locked_out``) when there is a wait."""
    if wait_seconds > 0:
        raise RateLimited(
            "too many failed attempts; try again later",
            retry_after_seconds=wait_seconds,
            code="locked_out",
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """After ``after`` failures, wait ``initial_seconds``, doubling per failure up to
    ``max_seconds``."""

    after: int
    initial_seconds: float
    max_seconds: float

    def seconds(self, count: int) -> float:
        """How long ``count`` failures hold a key (0.0 below the threshold)."""
        over = count - self.after
        if over < 0:
            return 0.0
        return float(min(self.initial_seconds * 2.0 ** min(over, 64), self.max_seconds))


def lockout_keys(settings: AuthSettings, account: str, address: str) -> list[tuple[str, Rule]]:
    """The keys a failure of ``account`` from ``address`` counts under, with their rules:
    the pair (a lock-out) and the account from anywhere (a slow-down)."""
    return [
        (
            f"pair:{account}|{address_key(address)}",
            Rule(
                settings.lockout_after_failures,
                settings.lockout_initial_seconds,
                settings.lockout_max_seconds,
            ),
        ),
        (
            f"account:{account}",
            Rule(
                settings.slowdown_after_failures,
                settings.slowdown_initial_seconds,
                settings.slowdown_max_seconds,
            ),
        ),
    ]


class LoginLockout(Protocol):
    """Where the lock-out counters live (this process or Redis): ``check`` raises
    RateLimited (``locked_out``) while ``account`` is held for ``address``, ``failed`` counts
    a failure, ``succeeded`` forgets the failures of the account (from that address and
    overall)."""

    async def check(self, account: str, address: str) -> None: ...

    async def failed(self, account: str, address: str) -> None: ...

    async def succeeded(self, account: str, address: str) -> None: ...


@dataclass(slots=True)
class _Failures:
    count: int
    held_until: float


class Lockout:
    """The lock-out in this process."""

    def __init__(self, settings: AuthSettings, clock: Clock = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    async def check(self, account: str, address: str) -> None:
        """Raise RateLimited (code ``locked_out``) while the account is held for ``address``."""
        now = self._clock()
        keys = lockout_keys(self._settings, account, address)
        wait = max(
            (f.held_until - now for k, _ in keys if (f := self._failures.get(k))), default=0.0
        )
        raise_if_locked(wait)

    async def failed(self, account: str, address: str) -> None:
        """Count a failure of ``account`` from ``address``."""
        now = self._clock()
        for key, rule in lockout_keys(self._settings, account, address):
            entry = self._failures.pop(key, None) or _Failures(0, 0.0)
            entry.count += 1
            seconds = rule.seconds(entry.count)
            if seconds:
                entry.held_until = now + seconds
            self._failures[key] = entry
            if len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    async def succeeded(self, account: str, address: str) -> None:
        """Forget the failures of the account from ``address`` and overall."""
        for key, _ in lockout_keys(self._settings, account, address):
            self._failures.pop(key, None)

"""The login lock-out kept in Redis, so several hub workers share one count of failures per
account and address and per account (``[auth.rate_limits] backend = "redis"``); the keys and
their rules are ``konak.hub.security.ratelimit.lockout_keys``, as in this process.

A failure is one Lua script over all its keys (atomic on the server): it increments each
key's count and, from the key's threshold on, sets its hold-until by the Redis server's clock
(``TIME``), so concurrent failures on different workers are never lost and the workers'
clocks do not matter. The check reads hold-until against the same clock; a success deletes
the keys. A key is forgotten twice its rule's maximum after its last failure.

Redis failing at run time is **fail-closed**, like the shared token buckets: the login is
refused with 503 ``rate_limit_unavailable`` rather than let through without a lock-out.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from konak.hub.security.errors import Unavailable
from konak.hub.security.ratelimit import lockout_keys, raise_if_locked
from konak.hub.security.settings import AuthSettings

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

# KEYS the lock-out keys. Returns the longest remaining lock in seconds as a string (Lua
# numbers come back from Redis truncated to integers).
CHECK: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait = 0
for _, key in ipairs(KEYS) do
  local locked_until = tonumber(redis.call('HGET', key, 'until'))
  if locked_until and locked_until - now > wait then
    wait = locked_until - now
  end
end
return tostring(wait)
"""

# KEYS the lock-out keys; ARGV four per key: threshold, initial seconds, maximum seconds,
# retention (ms).
FAILED: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i, key in ipairs(KEYS) do
  local threshold = tonumber(ARGV[4 * i - 3])
  local initial = tonumber(ARGV[4 * i - 2])
  local maximum = tonumber(ARGV[4 * i - 1])
  local count = redis.call('HINCRBY', key, 'count', 1)
  local over = count - threshold
  if over >= 0 then
    local seconds = math.min(initial * 2 ^ math.min(over, 64), maximum)
    redis.call('HSET', key, 'until', tostring(now + seconds))
  end
  redis.call('PEXPIRE', key, ARGV[4 * i])
end
return 1
"""


class RedisLockout:
    """The progressive lock-out shared through Redis (redis-py asyncio)."""

    def __init__(self, redis: Redis, settings: AuthSettings) -> None:
        self._redis = redis
        self._settings = settings
        self._prefix = f"{settings.limit_backend.key_prefix}lockout:"
        self._check: Any = redis.register_script(CHECK)
        self._failed: Any = redis.register_script(FAILED)

    def _keys(self, account: str, address: str) -> list[str]:
        return [f"{self._prefix}{k}" for k, _ in lockout_keys(self._settings, account, address)]

    def _unavailable(self, exc: BaseException) -> Unavailable:
        logger.warning("lock-out Redis failed (%s): refusing", type(exc).__name__)
        return Unavailable(
            "login protection is unavailable; try again later", code="rate_limit_unavailable"
        )

    async def check(self, account: str, address: str) -> None:
        """Raise RateLimited (``locked_out``) while the account is held for ``address``; 503
        when Redis fails."""
        from redis.exceptions import RedisError

        try:
            wait = float(await self._check(keys=self._keys(account, address)))
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        raise_if_locked(wait)

    async def failed(self, account: str, address: str) -> None:
        """Count a failure of ``account`` from ``address``, atomically; 503 when Redis
        fails."""
        from redis.exceptions import RedisError

        rules = lockout_keys(self._settings, account, address)
        args: list[float] = []
        for _, rule in rules:
            retention_ms = int(rule.max_seconds * 2 * 1000)
            args += [rule.after, rule.initial_seconds, rule.max_seconds, retention_ms]
        try:
            await self._failed(keys=[f"{self._prefix}{k}" for k, _ in rules], args=args)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def succeeded(self, account: str, address: str) -> None:
        """Forget the failures of the account from ``address`` and overall; 503 when Redis
        fails."""
        from redis.exceptions import RedisError

        try:
            await self._redis.delete(*self._keys(account, address))
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

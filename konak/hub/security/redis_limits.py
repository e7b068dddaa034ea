"""Token buckets in Redis, so several hub workers share one budget per IP, user and route.

Each take is one Lua script (atomic on the server) that refills by the Redis server's own
clock (``TIME``), so the workers' clocks do not matter. Redis failing at run time is
**fail-closed**: the request is refused with 503 ``rate_limit_unavailable`` rather than let
through unlimited (deny by default); an unreachable Redis at start-up stops the hub with a
clear error.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from konak.hub.errors import HubError
from konak.hub.security.errors import Unavailable
from konak.hub.security.settings import LimitBackend, RateLimit

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

# KEYS[1] the bucket; ARGV burst, tokens per second. Returns the wait in seconds as a
# string (Lua numbers come back from Redis truncated to integers).
TAKE: Final = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(b[1]) or burst
local updated = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisUnreachable(HubError):
    """The configured Redis does not answer at start-up."""

    code = "redis_unreachable"


class RedisBuckets:
    """Buckets shared through Redis (redis-py asyncio)."""

    def __init__(self, settings: LimitBackend) -> None:
        from redis.asyncio import Redis

        self._settings = settings
        self._redis: Redis = Redis.from_url(
            settings.url,
            password=settings.password or None,
            socket_timeout=settings.timeout_seconds,
            socket_connect_timeout=settings.timeout_seconds,
        )
        self._take: Any = self._redis.register_script(TAKE)

    @property
    def client(self) -> Redis:
        """The Redis client (the shared lock-out uses it too)."""
        return self._redis

    async def start(self) -> None:
        """Check that Redis answers; RedisUnreachable otherwise."""
        from redis.exceptions import RedisError

        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise RedisUnreachable(
                f"the rate-limit Redis ([auth.rate_limits] url) does not answer: "
                f"{type(exc).__name__}"
            ) from exc
        logger.info("rate limits are shared through Redis")

    async def take(self, scope: str, key: str, limit: RateLimit) -> float:
        """Spend a token of the shared bucket; 503 when Redis fails (fail-closed)."""
        from redis.exceptions import RedisError

        name = f"{self._settings.key_prefix}{scope}:{key}"
        try:
            wait = await self._take(keys=[name], args=[limit.burst, limit.per_second])
        except (RedisError, OSError) as exc:
            logger.warning("rate-limit Redis failed (%s): refusing", type(exc).__name__)
            raise Unavailable(
                "rate limiting is unavailable; try again later", code="rate_limit_unavailable"
            ) from exc
        return float(wait)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

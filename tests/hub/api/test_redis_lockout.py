"""The login lock-out shared through a real redis-server: failures on one hub worker lock the
account on every worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from konak.hub.api.errors import status_of
from konak.hub.security.errors import RateLimited, Unavailable
from konak.hub.security.redis_lockout import RedisLockout
from konak.hub.security.settings import LimitBackend
from tests.hub.api.conftest import PASSWORD, ApiFactory, RedisServer, auth_settings

pytestmark = pytest.mark.integration

WRONG = "wrong-guess-123456"


async def _login(
    client: TestClient[web.Request, web.Application], email: str, password: str
) -> tuple[int, str]:
    resp = await client.post("/api/auth/login", json={"email": email, "password": password})
    body = await resp.json()
    return resp.status, body.get("error", {}).get("code", "ok")


async def test_failed_logins_on_one_worker_lock_the_account_on_the_other(
    make_api: ApiFactory, redis_server: RedisServer
) -> None:
    backend = LimitBackend(backend="redis", url=redis_server.url)
    kw = {"limit_backend": backend, "lockout_after_failures": 3, "lockout_initial_seconds": 60.0}
    first = await make_api(**kw)
    second = await make_api(**kw)
    first.user("target@acme.test", {})
    assert await _login(second.client, "target@acme.test", PASSWORD) == (200, "ok")

    failures = [await _login(first.client, "target@acme.test", WRONG) for _ in range(3)]
    on_the_other = await second.client.post(
        "/api/auth/login", json={"email": "target@acme.test", "password": PASSWORD}
    )

    assert failures == [(401, "bad_credentials")] * 3
    assert on_the_other.status == 429
    assert (await on_the_other.json())["error"]["code"] == "locked_out"
    assert 30 < int(on_the_other.headers["Retry-After"]) <= 60


async def test_failures_alternating_between_workers_add_up_to_one_count(
    make_api: ApiFactory, redis_server: RedisServer
) -> None:
    backend = LimitBackend(backend="redis", url=redis_server.url)
    workers = [await make_api(limit_backend=backend, lockout_after_failures=4) for _ in range(2)]
    workers[0].user("target@acme.test", {})

    outcomes = [
        await _login(w.client, "target@acme.test", WRONG) for w in workers * 2 + workers[:1]
    ]

    assert outcomes == [(401, "bad_credentials")] * 4 + [(429, "locked_out")]


@pytest.fixture
async def redis_lockout(redis_server: RedisServer) -> AsyncIterator[RedisLockout]:
    settings = auth_settings(
        limit_backend=LimitBackend(backend="redis", url=redis_server.url, timeout_seconds=1),
        lockout_after_failures=10,
        lockout_initial_seconds=30.0,
        slowdown_after_failures=15,
        slowdown_initial_seconds=5.0,
    )
    client: Redis = Redis.from_url(redis_server.url, socket_timeout=1, socket_connect_timeout=1)
    yield RedisLockout(client, settings)
    await client.aclose()


async def test_concurrent_failures_are_all_counted(redis_lockout: RedisLockout) -> None:
    await asyncio.gather(*(redis_lockout.failed("a@x.io", "192.0.2.1") for _ in range(9)))
    await redis_lockout.check("a@x.io", "192.0.2.1")  # nine of ten: not locked yet

    await redis_lockout.failed("a@x.io", "192.0.2.1")

    with pytest.raises(RateLimited) as info:
        await redis_lockout.check("a@x.io", "192.0.2.1")
    assert info.value.code == "locked_out"
    assert info.value.retry_after_seconds > 5.0  # the pair's lock, not the slow-down
    await redis_lockout.check("a@x.io", "192.0.2.2")  # the account has ten of fifteen
    await redis_lockout.succeeded("a@x.io", "192.0.2.1")
    await redis_lockout.check("a@x.io", "192.0.2.1")


async def test_failures_from_many_addresses_slow_the_account_down_briefly(
    redis_lockout: RedisLockout,
) -> None:
    await asyncio.gather(*(redis_lockout.failed("a@x.io", f"192.0.2.{i}") for i in range(15)))

    with pytest.raises(RateLimited) as info:
        await redis_lockout.check("a@x.io", "198.51.100.7")
    assert 0 < info.value.retry_after_seconds <= 5.0
    await redis_lockout.check("b@x.io", "198.51.100.7")  # other accounts are not held


async def test_a_redis_failure_refuses_logins_instead_of_dropping_the_lockout(
    redis_lockout: RedisLockout, redis_server: RedisServer
) -> None:
    redis_server.stop()

    for call in (redis_lockout.check, redis_lockout.failed, redis_lockout.succeeded):
        with pytest.raises(Unavailable) as info:
            await call("a@x.io", "192.0.2.1")
        assert info.value.code == "rate_limit_unavailable"
        assert status_of(info.value) == 503

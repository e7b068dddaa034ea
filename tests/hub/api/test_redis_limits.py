"""Rate limits shared through a real redis-server: several hub workers, one budget."""

from __future__ import annotations

import asyncio

import pytest

from konak.devtools.mosquitto import free_port
from konak.hub.security.redis_limits import RedisBuckets, RedisUnreachable
from konak.hub.security.settings import LimitBackend, RateLimit
from tests.hub.api.conftest import ApiFactory, RedisServer

pytestmark = pytest.mark.integration

SLOW = RateLimit(3, 0.001)  # three requests, then (practically) no refill during a test


async def test_two_hub_workers_sharing_one_redis_see_one_budget_per_client_ip(
    make_api: ApiFactory, redis_server: RedisServer
) -> None:
    backend = LimitBackend(backend="redis", url=redis_server.url)
    first = await make_api(limit_backend=backend, ip_limit=SLOW)
    second = await make_api(limit_backend=backend, ip_limit=SLOW)

    statuses = [
        (await api.client.get("/api/auth/me")).status for api in (first, second, first, second)
    ]
    refused = await second.client.get("/api/auth/me")

    assert statuses == [401, 401, 401, 429]
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert (await refused.json())["error"]["code"] == "rate_limited"


async def test_per_user_and_per_route_limits_are_shared_too(
    make_api: ApiFactory, redis_server: RedisServer
) -> None:
    backend = LimitBackend(backend="redis", url=redis_server.url)
    workers = [
        await make_api(limit_backend=backend, user_limit=SLOW, route_limits={"login": SLOW})
        for _ in range(2)
    ]
    workers[0].user("ann@acme.test", {})
    headers = await workers[0].token("ann@acme.test")  # spends one login token

    me = [(await w.client.get("/api/auth/me", headers=headers)).status for w in workers * 2]
    logins = [
        (await w.client.post("/api/auth/login", json={"email": "x@y.io", "password": "p"})).status
        for w in workers * 2
    ]

    assert me == [200, 200, 200, 429]
    assert logins == [401, 401, 429, 429]  # the first token went to the sign-in


async def test_concurrent_takes_on_one_bucket_never_overspend_it(
    redis_server: RedisServer,
) -> None:
    buckets = RedisBuckets(LimitBackend(backend="redis", url=redis_server.url))
    await buckets.start()
    try:
        waits = await asyncio.gather(
            *(buckets.take("ip", "10.0.0.1", RateLimit(10, 0.001)) for _ in range(40))
        )
    finally:
        await buckets.close()

    assert sum(1 for w in waits if w == 0.0) == 10
    assert all(w > 0 for w in waits if w != 0.0)


async def test_an_unreachable_redis_stops_the_hub_at_start_with_a_clear_error(
    make_api: ApiFactory,
) -> None:
    nowhere = LimitBackend(
        backend="redis", url=f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=1
    )

    with pytest.raises(RedisUnreachable) as info:
        await make_api(limit_backend=nowhere)

    assert info.value.code == "redis_unreachable"
    assert "[auth.rate_limits] url" in info.value.message


async def test_redis_failing_while_running_refuses_requests_instead_of_lifting_limits(
    make_api: ApiFactory, redis_server: RedisServer
) -> None:
    api = await make_api(
        limit_backend=LimitBackend(backend="redis", url=redis_server.url, timeout_seconds=1)
    )
    before = await api.client.get("/api/auth/me")
    redis_server.stop()

    after = await api.client.get("/api/auth/me")
    public = await api.client.get("/api/openapi.json")

    assert before.status == 401
    assert after.status == 503
    assert (await after.json())["error"]["code"] == "rate_limit_unavailable"
    assert public.status == 200  # public routes are not rate limited

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request

from konak.hub.api.http import client_address
from konak.hub.security.errors import RateLimited
from konak.hub.security.ratelimit import Lockout, TokenBuckets, address_key
from konak.hub.security.settings import RateLimit
from tests.hub.api.conftest import Api, ApiFactory, auth_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(RateLimit(3, 0.5), clock)
    assert [buckets.take("ip") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("ip") == pytest.approx(2.0)
    assert buckets.take("other-ip") == 0.0
    clock.now += 2.0
    assert buckets.take("ip") == 0.0
    assert buckets.take("ip") > 0


async def test_the_lockout_starts_after_the_threshold_and_doubles_with_each_failure() -> None:
    clock = Clock()
    lockout = Lockout(auth_settings(lockout_after_failures=3, lockout_initial_seconds=10.0), clock)
    for _ in range(2):
        await lockout.failed("a@x.io", "192.0.2.1")
        await lockout.check("a@x.io", "192.0.2.1")
    waits = []
    for _ in range(3):
        await lockout.failed("a@x.io", "192.0.2.1")
        with pytest.raises(RateLimited) as info:
            await lockout.check("a@x.io", "192.0.2.1")
        assert info.value.code == "locked_out"
        waits.append(info.value.retry_after_seconds)
        await lockout.check("a@x.io", "192.0.2.2")  # another address: not held
    assert waits == [10.0, 20.0, 40.0]
    clock.now += 41.0
    await lockout.check("a@x.io", "192.0.2.1")
    await lockout.succeeded("a@x.io", "192.0.2.1")
    await lockout.failed("a@x.io", "192.0.2.1")
    await lockout.check("a@x.io", "192.0.2.1")


async def test_the_lockout_is_capped_at_its_maximum() -> None:
    clock = Clock()
    lockout = Lockout(
        auth_settings(
            lockout_after_failures=1, lockout_initial_seconds=10.0, lockout_max_seconds=30.0
        ),
        clock,
    )
    for _ in range(10):
        await lockout.failed("a@x.io", "192.0.2.1")
    with pytest.raises(RateLimited) as info:
        await lockout.check("a@x.io", "192.0.2.1")
    assert info.value.retry_after_seconds == 30.0


async def test_brute_force_logins_lock_that_address_out_even_with_the_right_password(
    make_api: ApiFactory,
) -> None:
    api: Api = await make_api(lockout_after_failures=3, lockout_initial_seconds=60.0)
    api.user("target@acme.test", {})
    for _ in range(3):
        resp = await api.client.post(
            "/api/auth/login", json={"email": "target@acme.test", "password": "guess-123456"}
        )
        assert resp.status == 401
    resp = await api.client.post(
        "/api/auth/login", json={"email": "target@acme.test", "password": "a-long-passphrase-1"}
    )
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "locked_out"
    assert int(resp.headers["Retry-After"]) == 60


async def test_a_route_limit_answers_429_with_retry_after(make_api: ApiFactory) -> None:
    api: Api = await make_api(route_limits={"login": RateLimit(2, 0.1)})
    statuses = []
    for _ in range(3):
        resp = await api.client.post("/api/auth/login", json={"email": "a@b.cd", "password": "x"})
        statuses.append(resp.status)
    assert statuses == [401, 401, 429]
    assert int(resp.headers["Retry-After"]) == 10
    assert (await api.client.get("/api/openapi.json")).status == 200, "other routes still work"


async def test_a_user_over_the_per_user_limit_gets_429_until_the_bucket_refills(
    make_api: ApiFactory,
) -> None:
    api: Api = await make_api(user_limit=RateLimit(3, 0.01))
    api.user("busy@acme.test", {})
    headers = await api.token("busy@acme.test")
    statuses = [(await api.client.get("/api/auth/me", headers=headers)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


async def test_a_client_ip_over_its_limit_gets_429(make_api: ApiFactory) -> None:
    api: Api = await make_api(ip_limit=RateLimit(2, 0.01))
    statuses = [(await api.client.get("/api/auth/me")).status for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_by_its_address() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff:1:2:3")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") == "192.0.2.7"


def _request(peer: str, headers: dict[str, str]) -> Any:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 4711) if name == "peername" else default
    )
    return make_mocked_request("POST", "/api/auth/login", headers=headers, transport=transport)


@pytest.mark.parametrize(
    ("peer", "header", "value", "expected"),
    [
        ("127.0.0.1", "X-Forwarded-For", "198.51.100.1, 203.0.113.9", "203.0.113.9"),
        ("127.0.0.1", "X-Forwarded-For", "203.0.113.9, 10.0.0.5", "203.0.113.9"),
        ("192.0.2.50", "X-Forwarded-For", "203.0.113.9", "192.0.2.50"),
        ("127.0.0.1", "X-Forwarded-For", "not-an-address", "127.0.0.1"),
        ("127.0.0.1", "X-Forwarded-For", "10.0.0.5", "127.0.0.1"),
        ("127.0.0.1", "Forwarded", 'for="[2001:db8::7]:4711";proto=https', "2001:db8::7"),
        ("127.0.0.1", "Forwarded", "for=192.0.2.60:80, for=203.0.113.3", "203.0.113.3"),
        ("127.0.0.1", "Forwarded", "for=_hidden", "127.0.0.1"),
    ],
)
def test_a_forwarding_header_names_the_client_only_through_trusted_proxies(
    peer: str, header: str, value: str, expected: str
) -> None:
    settings = auth_settings(
        trusted_proxies=("127.0.0.1", "10.0.0.0/8"), forwarded_header=header.lower()
    )
    assert client_address(_request(peer, {header: value}), settings) == expected


def test_without_trusted_proxies_a_forwarding_header_is_ignored() -> None:
    request = _request("192.0.2.50", {"X-Forwarded-For": "203.0.113.9"})
    assert client_address(request, auth_settings()) == "192.0.2.50"

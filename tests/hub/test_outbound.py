"""The outbound address policy of tenants' MCP servers: hostile address forms are refused,
the operator's allow-list is exact, and the HTTP client connects only to checked addresses."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from konak.hub.errors import ConfigError
from konak.hub.outbound import (
    IPAddress,
    NameNotResolved,
    OutboundPolicy,
    OutboundRefused,
    forbidden_headers,
    parse_allow_rule,
    pinned_http_client,
)
from konak.hub.settings import parse_settings

HOSTILE_URLS = [
    "http://127.0.0.1:8080/mcp",
    "http://localhost/mcp",
    "http://LOCALHOST./mcp",
    "http://tenant.localhost/mcp",
    "http://0x7f000001/mcp",
    "http://2130706433/mcp",
    "http://017700000001/mcp",
    "http://0177.0.0.1/mcp",
    "http://127.1/mcp",
    "http://[::1]/mcp",
    "http://[::ffff:127.0.0.1]/mcp",
    "http://[::ffff:7f00:1]/mcp",
    "http://[::]/mcp",
    "http://0.0.0.0/mcp",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://168.63.129.16/metadata",
    "http://192.0.0.192/opc/v2/",
    "http://10.0.0.1/mcp",
    "http://172.16.5.4/mcp",
    "http://192.168.1.1/mcp",
    "http://100.64.0.1/mcp",
    "http://198.18.0.1/mcp",
    "http://224.0.0.1/mcp",
    "http://240.0.0.1/mcp",
    "http://255.255.255.255/mcp",
    "http://[ff02::1]/mcp",
    "http://[fe80::1]/mcp",
    "http://[fec0::1]/mcp",
    "http://[fd12:3456::1]/mcp",
    "http://[64:ff9b::7f00:1]/mcp",
    "http://[2002:7f00:1::]/mcp",
    "http://[::7f00:1]/mcp",
]


def resolving(table: dict[str, list[str]]) -> Callable[[str, int], Any]:
    """A resolver from a table (names the test invents; addresses stand for themselves),
    counting its calls."""
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[IPAddress]:
        calls.append(host)
        with contextlib.suppress(ValueError):
            return [ipaddress.ip_address(host)]
        if host not in table:
            raise OSError(f"{host}: unknown")
        return [ipaddress.ip_address(a) for a in table[host]]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize("url", HOSTILE_URLS)
async def test_every_hostile_address_form_is_refused_without_an_allow_list(url: str) -> None:
    with pytest.raises(OutboundRefused) as refused:
        await OutboundPolicy().check_url(url)

    assert refused.value.code == "destination_not_allowed"
    assert "allow_hosts" in refused.value.message


async def test_a_public_address_is_allowed() -> None:
    await OutboundPolicy().check_url("https://93.184.216.34/mcp")
    await OutboundPolicy().check_url("http://[2606:2800:220:1:248:1893:25c8:1946]:8080/mcp")


REFUSED_V4 = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
              "100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4"]  # fmt: skip


@given(
    network=st.sampled_from(REFUSED_V4),
    offset=st.integers(min_value=0, max_value=2**32),
    form=st.sampled_from(["dotted", "decimal", "hex", "octal", "mapped"]),
)
async def test_any_address_of_a_refused_network_is_refused_in_any_numeric_form(
    network: str, offset: int, form: str
) -> None:
    net = ipaddress.IPv4Network(network)
    address = net[offset % net.num_addresses]
    host = {
        "dotted": str(address),
        "decimal": str(int(address)),
        "hex": hex(int(address)),
        "octal": ".".join(f"0{int(b):o}" for b in str(address).split(".")),
        "mapped": f"[::ffff:{address}]",
    }[form]

    with pytest.raises(OutboundRefused):
        await OutboundPolicy().check_url(f"http://{host}:8080/mcp")


async def test_a_name_is_refused_when_any_of_its_addresses_is_refused() -> None:
    policy = OutboundPolicy(resolver=resolving({"tools.example": ["93.184.216.34", "10.0.0.7"]}))

    with pytest.raises(OutboundRefused, match=r"10\.0\.0\.7 is private"):
        await policy.check_url("https://tools.example/mcp")


async def test_a_name_that_does_not_resolve_is_its_own_refusal() -> None:
    with pytest.raises(NameNotResolved):
        await OutboundPolicy(resolver=resolving({})).check_url("https://nowhere.example/mcp")


@pytest.mark.parametrize(
    ("allow", "url", "allowed"),
    [
        ("127.0.0.1", "http://127.0.0.1:3001/mcp", True),
        ("127.0.0.1", "http://[::ffff:127.0.0.1]:3001/mcp", True),
        ("127.0.0.1", "http://127.0.0.2:3001/mcp", False),
        ("127.0.0.1", "http://127.0.0.1:8380/mcp", False),  # the hub's own port
        ("127.0.0.1:8380", "http://127.0.0.1:8380/mcp", True),  # named with its port
        ("127.0.0.1:3001", "http://127.0.0.1:3002/mcp", False),
        ("10.0.0.0/8", "http://10.20.30.40/mcp", True),
        ("10.0.0.0/8:8080", "http://10.20.30.40:8080/mcp", True),
        ("10.0.0.0/8:8080", "http://10.20.30.40:8081/mcp", False),
        ("[::1]:9000", "http://[::1]:9000/mcp", True),
        ("::1", "http://[::1]:9000/mcp", True),
        ("fd00::/8", "http://[fd12::5]/mcp", True),
        ("169.254.0.0/16", "http://169.254.169.254/latest/meta-data/", False),
        ("169.254.169.254", "http://169.254.169.254/latest/meta-data/", True),
        ("localhost", "http://localhost:3001/mcp", True),
        ("localhost", "http://127.0.0.1:3001/mcp", False),  # a name allows that name only
        ("mcp.internal:8080", "http://mcp.internal:8080/mcp", True),
        ("mcp.internal:8080", "http://MCP.internal.:8080/mcp", True),
        ("mcp.internal:8080", "http://mcp.internal:8081/mcp", False),
        ("mcp.internal", "http://other.internal/mcp", False),
    ],
)
async def test_the_allow_list_allows_exactly_what_it_names(
    allow: str, url: str, allowed: bool
) -> None:
    resolver = resolving(
        {
            "localhost": ["127.0.0.1"],
            "mcp.internal": ["10.0.0.5"],
            "other.internal": ["10.0.0.6"],
        }
    )
    policy = OutboundPolicy(
        allow=(parse_allow_rule(allow),), own_ports=frozenset({8380, 8381}), resolver=resolver
    )
    if allowed:
        await policy.check_url(url)
    else:
        with pytest.raises(OutboundRefused):
            await policy.check_url(url)


@pytest.mark.parametrize(
    "entry", ["", "10.0.0.0/33", "host:99999", "host:0", "[::1", "[::1]x", "a b", "http://x", "1.2"]
)
def test_a_malformed_allow_list_entry_is_a_config_error(entry: str) -> None:
    with pytest.raises(ConfigError, match="allow_hosts"):
        parse_allow_rule(entry)


def test_the_allow_list_is_read_from_hub_toml_and_checked() -> None:
    doc: dict[str, Any] = {"hub": {"database_path": "/tmp/x.sqlite3"}}

    settings = parse_settings({**doc, "mcp": {"allow_hosts": ["10.0.0.5", "mcp.internal:8080"]}})

    assert settings.mcp.allow_hosts == ("10.0.0.5", "mcp.internal:8080")
    assert parse_settings(doc).mcp.allow_hosts == ()
    with pytest.raises(ConfigError, match="allow_hosts"):
        parse_settings({**doc, "mcp": {"allow_hosts": ["10.0.0.0/40"]}})
    with pytest.raises(ConfigError, match="allow_hosts"):
        parse_settings({**doc, "mcp": {"allow_hosts": "10.0.0.5"}})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_settings({**doc, "mcp": {"allow": []}})


def test_host_hop_by_hop_and_forwarding_headers_are_forbidden() -> None:
    names = ["Authorization", "Host", "transfer-encoding", "Connection", "X-Forwarded-For", "X-A"]

    refused = forbidden_headers(names)

    assert refused == ["Host", "transfer-encoding", "Connection", "X-Forwarded-For"]


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[int, list[web.Request]]]:
    """A loopback HTTP server that records the requests it gets: (port, requests)."""
    seen: list[web.Request] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield int(runner.addresses[0][1]), seen
    await runner.cleanup()


async def test_the_client_connects_to_the_address_it_checked_and_sends_the_urls_host(
    recorder: tuple[int, list[web.Request]],
) -> None:
    port, seen = recorder
    resolver = resolving({"tools.example": ["127.0.0.1"]})
    policy = OutboundPolicy(allow=(parse_allow_rule("127.0.0.1"),), resolver=resolver)

    async with pinned_http_client(policy, {"X-Api": "1"}) as client:
        response = await client.get(f"http://tools.example:{port}/mcp")

    assert response.status_code == 200
    assert [(r.host, r.headers["X-Api"]) for r in seen] == [(f"tools.example:{port}", "1")]
    assert resolver.calls == ["tools.example"]  # type: ignore[attr-defined]


async def test_a_name_that_rebinds_to_loopback_after_the_check_is_refused_at_connect(
    recorder: tuple[int, list[web.Request]],
) -> None:
    port, seen = recorder
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in next(answers)]

    policy = OutboundPolicy(resolver=rebinding)
    url = f"http://rebind.example:{port}/mcp"
    await policy.check_url(url)  # registration: a public address

    async with pinned_http_client(policy, {}) as client:
        with pytest.raises(httpx2.ConnectError, match="loopback"):
            await client.get(url)

    assert seen == []


async def test_the_client_ignores_proxies_from_the_environment(
    recorder: tuple[int, list[web.Request]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, seen = recorder
    # A proxy would resolve the name itself, out of the policy's reach.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{port}")

    async with pinned_http_client(OutboundPolicy(), {}) as client:
        with pytest.raises(httpx2.ConnectError, match="loopback"):
            await client.get("http://127.0.0.9:9/mcp")

    assert seen == []

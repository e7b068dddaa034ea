"""Where the hub may connect on a tenant's behalf: the outbound address policy of the MCP
servers tenant admins add through the API (hub.toml's servers are the operator's, trusted).

A destination is refused unless every address its host resolves to is public: loopback,
link-local, private, unique-local, CGNAT, multicast, unspecified and reserved addresses (also
inside IPv4-mapped, NAT64 and 6to4 forms), cloud metadata addresses and the addresses of this
host are refused, unless the operator's ``[mcp] allow_hosts`` names them. The hub's own
listening ports stay refused on this host's addresses unless an entry names the port.

The check that counts is made when a connection is opened, on the addresses that connection
then uses: the HTTP client of a tenant's server resolves each host once, checks every address
and connects to a checked one (no DNS rebinding between the check and the connect); TLS still
verifies the URL's host name. The same check answers a registration at once, with the reason.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from konak.hub.errors import ConfigError, HubError

if TYPE_CHECKING:
    import httpcore2
    import httpx2

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

RESOLVE_TIMEOUT_SECONDS: Final = 5.0
DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# Headers a tenant may not set on its server's requests: the hub's own framing of the request
# (Host, hop-by-hop and length headers) and what would speak for someone else to the peer.
FORBIDDEN_HEADERS: Final = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "expect",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
    }
)
# Cloud instance metadata and control endpoints (some are public or CGNAT addresses): refused
# even inside an allowed network; only an entry naming the address itself allows one.
METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS VPC DNS
        "fd00:ec2::254",  # AWS over IPv6
        "fd00:ec2::23",  # AWS VPC DNS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
        "192.0.0.192",  # Oracle Cloud
    )
)
_CGNAT: Final = ipaddress.ip_network("100.64.0.0/10")
_UNIQUE_LOCAL: Final = ipaddress.ip_network("fc00::/7")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
# RFC 6761: these names are loopback whatever a resolver (or a missing /etc/hosts) says.
_LOOPBACK_NAMES: Final = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
_HOST_NAME: Final = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


class OutboundRefused(HubError):
    """The hub does not connect there on a tenant's behalf (the message says why)."""

    code = "destination_not_allowed"


class NameNotResolved(OutboundRefused):
    """The host name does not resolve (now): nothing to connect to, nothing known to refuse."""

    code = "name_not_resolved"


@dataclass(frozen=True, slots=True)
class AllowRule:
    """One ``[mcp] allow_hosts`` entry: a host name, an address or a network, maybe a port."""

    host: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    def matches(self, host: str, address: IPAddress, port: int) -> bool:
        """Whether a connection to ``host`` (resolved to ``address``) on ``port`` is named."""
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return self.host == _normal_host(host)
        return self.network is not None and address in self.network

    def names_address(self, address: IPAddress) -> bool:
        """Whether the entry is this one address (not a network around it, not a name)."""
        return (
            self.network is not None and self.network.num_addresses == 1 and address in self.network
        )


def parse_allow_rule(text: str) -> AllowRule:
    """``10.0.0.5``, ``10.1.0.0/16``, ``fd00::/8``, ``mcp.internal``, each maybe with a port:
    ``mcp.internal:8080``, ``10.0.0.0/8:8080``, ``[fd00::5]:8080``; ConfigError otherwise."""
    where = f"[mcp] allow_hosts: {text!r}"
    host, port_text = text.strip(), ""
    if host.startswith("["):
        host, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ConfigError(f"{where}: write an IPv6 entry with a port as [address]:port")
        port_text = rest[1:]
    elif host.count(":") == 1:
        host, _, port_text = host.partition(":")
    port: int | None = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError(f"{where}: {port_text!r} is not a TCP port")
        port = int(port_text)
    try:
        return AllowRule(network=ipaddress.ip_network(host, strict=False), port=port)
    except ValueError:
        pass
    name = _normal_host(host)
    if "/" in host or _HOST_NAME.fullmatch(name) is None or name.replace(".", "").isdigit():
        raise ConfigError(f"{where}: not a host name, an address or a network")
    return AllowRule(host=name, port=port)


def forbidden_headers(names: Iterable[str]) -> list[str]:
    """The header names a tenant may not set (Host, hop-by-hop, forwarding), as given."""
    return [n for n in names if n.lower() in FORBIDDEN_HEADERS]


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for ``host`` (numeric forms included)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """The allow-list and the hub's own ports; ``resolver`` is replaced in tests only."""

    allow: tuple[AllowRule, ...] = ()
    own_ports: frozenset[int] = frozenset()
    resolver: Resolver = field(default=system_resolver, compare=False, repr=False)

    @classmethod
    def build(
        cls, allow_hosts: Iterable[str] = (), own_ports: Iterable[int] = ()
    ) -> OutboundPolicy:
        """A policy from ``[mcp] allow_hosts`` and the ports the hub listens on (0 is none)."""
        return cls(
            allow=tuple(parse_allow_rule(entry) for entry in allow_hosts),
            own_ports=frozenset(p for p in own_ports if p),
        )

    def refusal(self, host: str, address: IPAddress, port: int) -> str | None:
        """Why connecting to ``address`` (found for ``host``) on ``port`` is refused, or None."""
        address = _unmapped(address)
        rule = next((r for r in self.allow if r.matches(host, address, port)), None)
        if rule is None:
            return _kind(address)
        if address in METADATA_ADDRESSES and not rule.names_address(address):
            return "a cloud metadata address"
        if port in self.own_ports and rule.port != port and _is_this_host(address):
            return "this hub's own port"
        return None

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses a connection to ``host``:``port`` may use; OutboundRefused when the
        host does not resolve or any of its addresses is refused."""
        host = _normal_host(host)
        try:
            if host == "localhost" or host.endswith(".localhost"):
                found = list(_LOOPBACK_NAMES)
            else:
                async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                    found = await self.resolver(host, port)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise NameNotResolved(f"{host}: the name does not resolve") from exc
        if not found:
            raise NameNotResolved(f"{host}: the name does not resolve")
        for address in found:
            reason = self.refusal(host, address, port)
            if reason is not None:
                raise OutboundRefused(
                    f"{host} port {port} is refused: {address} is {reason} "
                    "(an operator may allow it in hub.toml [mcp] allow_hosts)"
                )
        return found

    async def check_url(self, url: str) -> None:
        """Refuse (OutboundRefused) a server URL whose destination is not allowed."""
        try:
            parts = urlsplit(url)
            port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        except ValueError as exc:
            raise OutboundRefused(f"not a valid URL: {exc}") from exc
        if not parts.hostname or port is None:
            raise OutboundRefused("the URL needs an http(s) scheme and a host")
        await self.addresses(parts.hostname, port)


def _normal_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _kind(address: IPAddress) -> str | None:
    """What kind of address a tenant may not reach, or None for a public one."""
    checks: tuple[tuple[bool, str], ...] = (
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address in _CGNAT, "shared address space (CGNAT)"),
        (address in _UNIQUE_LOCAL, "unique-local"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "site-local"),
        (address.is_private, "private"),
        (address.is_reserved or not address.is_global, "not publicly routable"),
    )
    for hit, kind in checks:
        if hit:
            return kind
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.sixtofour or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None
        )
        if embedded is not None and (inner := _kind(embedded)) is not None:
            return f"{inner} (inside {address})"
    if _is_this_host(address):
        return "an address of this host"
    return None


def _is_this_host(address: IPAddress) -> bool:
    """Whether the address is one of this machine's (only a local address can be bound)."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((str(address), 0))
        except OSError:
            return False
    return True


class PinnedBackend:
    """httpcore's network backend for a tenant's server: each TCP connect resolves the host
    through the policy and connects to a checked address, never to a name."""

    def __init__(self, policy: OutboundPolicy) -> None:
        import httpcore2

        self._policy = policy
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        """Connect to the first checked address of ``host`` that answers."""
        import httpcore2

        try:
            addresses = await self._policy.addresses(host, port)
        except OutboundRefused as exc:
            raise httpcore2.ConnectError(exc.message) from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        """A tenant's server is never a local socket."""
        import httpcore2

        raise httpcore2.ConnectError("unix sockets are not an outbound destination")

    async def sleep(self, seconds: float) -> None:
        """httpcore's retry delay."""
        await self._inner.sleep(seconds)


def pinned_http_client(policy: OutboundPolicy, headers: Mapping[str, str]) -> httpx2.AsyncClient:
    """The HTTP client of a tenant's MCP server: the SDK's timeouts, no proxy from the
    environment, and every connection through ``PinnedBackend``."""
    import httpcore2
    import httpx2
    from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT

    transport = httpx2.AsyncHTTPTransport()
    # httpx's transport takes no network backend: its pool is swapped for one that has ours
    # (the transport keeps mapping httpcore's errors to httpx's, which the SDK expects).
    transport._pool = httpcore2.AsyncConnectionPool(
        ssl_context=httpx2.create_ssl_context(),
        max_connections=20,
        max_keepalive_connections=10,
        keepalive_expiry=5.0,
        network_backend=PinnedBackend(policy),  # type: ignore[arg-type]
    )
    return httpx2.AsyncClient(
        transport=transport,
        headers=dict(headers),
        timeout=httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT),
        trust_env=False,
    )

"""Fixtures for the JSON API: an app with the auth parts only, on a real SQLite file and a
loopback HTTP server, with a fake provisioner at the broker seam."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from konak.devtools.mosquitto import free_port
from konak.hub.api.routes import setup_api
from konak.hub.keys import AUTH
from konak.hub.security.rbac import Role
from konak.hub.security.settings import AuthSettings, RateLimit, SigningKey
from konak.hub.security.state import AuthState
from konak.hub.settings import HubSettings, TenantSettings
from konak.provisioning.dynsec import DeviceLogin

SECRET = "s" * 40
PASSWORD = "a-long-passphrase-1"
TENANTS = ("acme", "globex")


def auth_settings(**kw: Any) -> AuthSettings:
    """Fast argon2, one HS256 key, generous limits unless a test says otherwise."""
    values: dict[str, Any] = {
        "keys": (SigningKey("k1", "HS256", secret=SECRET),),
        "active_kid": "k1",
        "argon2_time_cost": 1,
        "argon2_memory_kib": 64,
        "ip_limit": RateLimit(10_000, 1000.0),
        "user_limit": RateLimit(10_000, 1000.0),
        "route_limits": {},
    }
    values.update(kw)
    return AuthSettings(**values)


class FakeProvisioner:
    """Records broker identities instead of talking to a broker."""

    def __init__(self) -> None:
        self.created: list[tuple[str, str]] = []
        self.revoked: list[tuple[str, str]] = []

    async def create_device(self, tenant: str, device: str) -> DeviceLogin:
        self.created.append((tenant, device))
        return DeviceLogin(tenant, device, f"{tenant}.{device}", f"pw-{len(self.created)}")

    async def revoke_device(self, tenant: str, device: str) -> None:
        self.revoked.append((tenant, device))


@dataclasses.dataclass
class Api:
    """A running API and helpers to sign in."""

    client: TestClient[web.Request, web.Application]
    state: AuthState
    provisioner: FakeProvisioner

    def user(self, email: str, roles: dict[str, Role], *, superadmin: bool = False) -> str:
        """Create a user with roles; returns the user id."""
        user = self.state.users.create_user(email, PASSWORD, superadmin=superadmin)
        for tenant, role in roles.items():
            self.state.users.assign(tenant, user.user_id, role)
        return user.user_id

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        """Sign in and return the token response."""
        resp = await self.client.post(
            "/api/auth/login", json={"email": email, "password": password}
        )
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    async def token(self, email: str) -> dict[str, str]:
        """Authorization headers of a fresh session of ``email``."""
        return {"Authorization": f"Bearer {(await self.login(email))['access_token']}"}


ApiFactory = Callable[..., Any]


@pytest.fixture
async def make_api(tmp_path: Path) -> AsyncIterator[ApiFactory]:
    """Start an API with given auth settings: ``await make_api(**auth_kw)``."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(**kw: Any) -> Api:
        settings = HubSettings(
            database_path=tmp_path / "hub.sqlite3",
            tenants={t: TenantSettings(t) for t in TENANTS},
            auth=auth_settings(**kw),
        )
        app = web.Application()
        provisioner = FakeProvisioner()
        setup_api(app, settings, provisioner)
        client = TestClient(TestServer(app))
        try:
            await client.start_server()
        except BaseException:
            await client.close()
            raise
        clients.append(client)
        return Api(client, app[AUTH], provisioner)

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    """An API with users: an admin, operator, member and readonly of acme, an admin of
    globex and a superadmin."""
    running: Api = await make_api()
    for role in Role:
        running.user(f"{role.value}@acme.test", {"acme": role})
    running.user("admin@globex.test", {"globex": Role.ADMIN})
    running.user("root@konak.test", {}, superadmin=True)
    return running


@dataclasses.dataclass
class RedisServer:
    """A redis-server child process on a free loopback port."""

    port: int
    process: subprocess.Popen[str]

    @property
    def url(self) -> str:
        """Its redis:// URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Stop it (idempotent) and close its pipe."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server (Debian's) for this test, without persistence."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    server = RedisServer(port, proc)
    assert proc.stdout is not None
    # Wait for its "Ready to accept connections" line rather than sleeping.
    for line in proc.stdout:
        if "Ready to accept connections" in line:
            break
    else:
        server.stop()
        pytest.fail("redis-server did not start")
    yield server
    server.stop()

"""A whole hub (``create_app``: the store, the security core, the knowledge service with its
real sqlite-vec files and, when asked, the real embedding model) behind a loopback HTTP
server, with users of three tenants. No broker: the knowledge API does not need one."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from konak.devtools.mosquitto import free_port
from konak.hub.app import create_app
from konak.hub.keys import AUTH
from konak.hub.knowledge.settings import KnowledgeSettings
from konak.hub.quotas import QuotaSettings, TenantQuota
from konak.hub.security.rbac import Role
from konak.hub.settings import FleetMcpSettings, HubSettings, MqttSettings, TenantSettings
from tests.hub.api.conftest import PASSWORD, auth_settings
from tests.integration.hub.test_console_fleet_api import next_event

__all__ = ["next_event"]  # the event stream's reader, for the knowledge tests

pytestmark = pytest.mark.integration

DIM = 384
K = "/api/tenants/{t}/knowledge"
TINY_QUOTA = 20  # max_vectors of the tenant "tiny"
WAIT_SECONDS = 20.0


def vector(i: int) -> list[float]:
    """A distinct unit-ish vector per ``i`` (the service normalises it)."""
    v = np.zeros(DIM)
    v[i % DIM] = 1.0
    v[(i * 7 + 1) % DIM] += 0.5
    return [float(x) for x in v]


def jsonl(n: int, start: int = 0) -> bytes:
    """``n`` documents with vectors as JSON lines."""
    return b"".join(
        json.dumps(
            {
                "id": f"d{i}",
                "text": f"doc {i}",
                "metadata": {"i": i, "odd": i % 2 == 1},
                "vector": vector(i),
            }
        ).encode()
        + b"\n"
        for i in range(start, start + n)
    )


@dataclasses.dataclass
class Hub:
    """A running hub and a signed-in session per user."""

    client: TestClient[web.Request, web.Application]
    app: web.Application
    tokens: dict[str, str] = dataclasses.field(default_factory=dict)

    async def headers(self, email: str) -> dict[str, str]:
        """Authorization of ``email`` (signed in once)."""
        if email not in self.tokens:
            resp = await self.client.post(
                "/api/auth/login", json={"email": email, "password": PASSWORD}
            )
            assert resp.status == 200, await resp.text()
            self.tokens[email] = (await resp.json())["access_token"]
        return {"Authorization": f"Bearer {self.tokens[email]}"}

    async def call(
        self, method: str, path: str, email: str, tenant: str = "acme", **kw: Any
    ) -> ClientResponse:
        """One request as ``email`` on ``tenant``'s knowledge (``path`` after /knowledge)."""
        headers = {**(await self.headers(email)), **kw.pop("headers", {})}
        url = K.format(t=tenant) + path
        return await self.client.request(method, url, headers=headers, **kw)

    async def ok(self, method: str, path: str, email: str = "operator@acme.test", **kw: Any) -> Any:
        """A request that must succeed; its JSON (None for 204)."""
        resp = await self.call(method, path, email, **kw)
        assert resp.status in (200, 201, 204), await resp.text()
        return None if resp.status == 204 else await resp.json()


HubFactory = Callable[..., Any]


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Each real backend: sqlite-vec files beside the hub database, and a database of its
    own on the session's PostgreSQL + pgvector."""
    if request.param == "postgres":
        return {"backend": "postgres", "postgres_dsn": request.getfixturevalue("postgres_dsn")}
    return {}


@pytest.fixture
async def make_hub(tmp_path: Path, store_settings: dict[str, Any]) -> AsyncIterator[HubFactory]:
    """``await make_hub(model=False, **knowledge)``: a hub with acme (every role), globex (an
    admin: the attacker) and tiny (an admin, max_vectors 20), on each backend."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(*, model: bool = False, **knowledge: Any) -> Hub:
        models = Path(os.environ["KONAK_MODELS_DIR"]) if model else tmp_path / "no-models"
        knowledge = store_settings | knowledge
        settings = HubSettings(
            database_path=tmp_path / "hub.sqlite3",
            mqtt=MqttSettings(port=free_port(), reconnect_seconds=30.0),
            fleet_mcp=FleetMcpSettings(enabled=False),
            tenants={t: TenantSettings(t) for t in ("acme", "globex", "tiny")},
            auth=auth_settings(),
            knowledge=KnowledgeSettings(models_dir=models, **knowledge),
            quotas=QuotaSettings(tenants={"tiny": TenantQuota(max_vectors=TINY_QUOTA)}),
        )
        app = create_app(settings)
        users = app[AUTH].users
        for role in Role:
            user = users.create_user(f"{role.value}@acme.test", PASSWORD)
            users.assign("acme", user.user_id, role)
        for tenant in ("globex", "tiny"):
            user = users.create_user(f"admin@{tenant}.test", PASSWORD)
            users.assign(tenant, user.user_id, Role.ADMIN)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Hub(client, app)

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    """A hub without the embedding model (documents come with their vectors)."""
    started: Hub = await make_hub()
    return started

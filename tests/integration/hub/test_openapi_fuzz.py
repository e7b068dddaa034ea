"""schemathesis over /api/openapi.json against a running hub (real SQLite, real HTTP), as
the superadmin: no 5xx, and every answer matches the document.

``make test`` runs it with a fixed seed (the same cases every run); ``make fuzz`` sets
``KONAK_FUZZ_SEED=random`` and more ``KONAK_FUZZ_EXAMPLES`` for fresh cases, and prints the
seed so a failure can be replayed with ``KONAK_FUZZ_SEED=<seed>``."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, seed, settings
from schemathesis import checks

from konak.devtools.mosquitto import free_port
from konak.hub.app import create_app
from konak.hub.keys import AUTH
from konak.hub.knowledge.settings import KnowledgeSettings
from konak.hub.settings import FleetMcpSettings, HubSettings, MqttSettings, TenantSettings
from tests.hub.api.conftest import PASSWORD, auth_settings

pytestmark = pytest.mark.integration

ROOT = "root@konak.test"
FIXED_SEED = 20261130


def fuzz_seed() -> int:
    """``KONAK_FUZZ_SEED``: a number, ``random`` (a fresh one), or unset (the fixed one)."""
    value = os.environ.get("KONAK_FUZZ_SEED", "")
    if value == "random":
        return secrets.randbelow(2**32)
    return int(value) if value else FIXED_SEED


EXAMPLES_PER_OPERATION = int(os.environ.get("KONAK_FUZZ_EXAMPLES", "40"))
# A knowledge import's body is JSON lines: sent as generated text, like text/csv.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


class HubThread:
    """The hub app served from its own event loop in a thread (schemathesis calls are
    blocking)."""

    def __init__(self, settings: HubSettings) -> None:
        self.app = create_app(settings)
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(self.app)
        self.port = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()


def start_hub(tmp: Path, **kw: Any) -> HubThread:
    """A hub for fuzzing with the superadmin ``ROOT``, started."""
    hub = HubThread(
        HubSettings(
            database_path=tmp / "hub.sqlite3",
            http_port=0,
            # No broker: the API does not need one; ingest keeps retrying in the background.
            mqtt=MqttSettings(host="127.0.0.1", port=free_port(), reconnect_seconds=5.0),
            tenants={t: TenantSettings(t) for t in ("acme", "globex")},
            auth=auth_settings(lockout_after_failures=1_000_000),  # fuzzed logins fail
            **kw,
        )
    )
    users = hub.app[AUTH].users
    users.create_user(ROOT, PASSWORD, superadmin=True)
    hub.start()
    return hub


@pytest.fixture(scope="module")
def fuzz_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubThread]:
    # The real embedding model: searching by text and embedding answer, never 503.
    knowledge = KnowledgeSettings(models_dir=Path(os.environ["KONAK_MODELS_DIR"]))
    hub = start_hub(tmp_path_factory.mktemp("fuzz"), knowledge=knowledge)
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def pgvector_hub(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: str
) -> Iterator[HubThread]:
    """A second hub whose knowledge is in PostgreSQL + pgvector (a database of its own)."""
    import psycopg
    from psycopg import sql

    name = f"fuzz_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    knowledge = KnowledgeSettings(
        models_dir=Path(os.environ["KONAK_MODELS_DIR"]),
        backend="postgres",
        postgres_dsn=psycopg.conninfo.make_conninfo(postgres_server, dbname=name),
    )
    hub = start_hub(
        tmp_path_factory.mktemp("fuzz-pg"),
        knowledge=knowledge,
        fleet_mcp=FleetMcpSettings(enabled=False),  # the first hub holds its port
    )
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def hub_url(fuzz_hub: HubThread) -> str:
    return f"http://127.0.0.1:{fuzz_hub.port}"


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


def bearer(hub_url: str) -> dict[str, str]:
    login = requests.post(
        f"{hub_url}/api/auth/login", json={"email": ROOT, "password": PASSWORD}, timeout=10
    )
    assert login.status_code == 200
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def expiring_bearer(hub: HubThread) -> dict[str, str]:
    """A token that expires within a second: an event stream lasts as long as its token."""

    async def issue() -> str:
        state = hub.app[AUTH]
        user = state.users.by_email(ROOT)
        assert user is not None
        lifetime = state.settings.access_token_seconds
        pair, _ = state.tokens.issue(user.user_id, now=time.time() - lifetime + 1)
        return pair.access_token

    token = asyncio.run_coroutine_threadsafe(issue(), hub.loop).result(timeout=10)
    return {"Authorization": f"Bearer {token}"}


def fuzz(
    hub_url: str,
    hub: HubThread,
    within: str = "/",
    fixed: dict[str, str] | None = None,
) -> dict[str, int]:
    """Run every operation whose path starts with ``within`` (its path parameters in
    ``fixed`` set, not generated); the cases per operation. Fails on any failed check."""
    # schemathesis's pytest plugin does not run under pytest 9; its Python API does.
    schema = schemathesis.openapi.from_url(f"{hub_url}/api/openapi.json")
    run_seed = fuzz_seed()
    print(f"schemathesis: KONAK_FUZZ_SEED={run_seed}")
    cases: dict[str, int] = {}
    failures: dict[str, str] = {}
    for found in schema.get_all_operations():
        operation = found.ok()
        label = operation.label
        if not operation.path.startswith(within):
            continue

        @seed(run_seed)
        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            cases[label] = cases.get(label, 0) + 1  # noqa: B023 (run() is called right here)
            for name, value in (fixed or {}).items():
                if case.path_parameters is not None and name in case.path_parameters:
                    case.path_parameters[name] = value
            streams = case.operation.path.endswith("/events")
            headers = expiring_bearer(hub) if streams else bearer(hub_url)
            case.call_and_validate(base_url=hub_url, headers=headers, checks=CHECKS, timeout=10)

        try:
            run()
        except Exception as exc:  # a check failed: keep going to report every operation
            failures[label] = str(exc)[:2000]
    print(f"schemathesis: {len(cases)} operations, {sum(cases.values())} cases")
    assert failures == {}, f"replay with KONAK_FUZZ_SEED={run_seed}"
    return cases


def test_no_generated_request_gets_a_5xx_or_an_answer_outside_the_document(
    hub_url: str, fuzz_hub: HubThread
) -> None:
    cases = fuzz(hub_url, fuzz_hub)

    assert len(cases) >= 20


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_knowledge_routes_of_a_real_tenant_and_collection_get_no_5xx(
    backend: str, request: pytest.FixtureRequest
) -> None:
    # Generated tenant names almost never exist: send every knowledge case to acme's
    # collection "notes" (recreated when a case deleted it), so the bodies reach the service.
    hub: HubThread = request.getfixturevalue("fuzz_hub" if backend == "sqlite" else "pgvector_hub")
    url = f"http://127.0.0.1:{hub.port}"
    created = requests.post(
        f"{url}/api/tenants/acme/knowledge/collections",
        json={"name": "notes"},
        headers=bearer(url),
        timeout=10,
    )
    assert created.status_code in (201, 409)

    cases = fuzz(
        url, hub, "/api/tenants/{tenant}/knowledge", {"tenant": "acme", "collection": "notes"}
    )

    assert len(cases) == 15


def test_the_fuzz_seed_is_fixed_unless_a_fresh_or_given_one_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KONAK_FUZZ_SEED", raising=False)
    fixed = [fuzz_seed(), fuzz_seed()]
    monkeypatch.setenv("KONAK_FUZZ_SEED", "1234")
    given_seed = fuzz_seed()
    monkeypatch.setenv("KONAK_FUZZ_SEED", "random")
    fresh = {fuzz_seed() for _ in range(8)}

    assert fixed == [FIXED_SEED, FIXED_SEED]
    assert given_seed == 1234
    assert len(fresh) > 1


@pytest.mark.parametrize(
    "path",
    [
        "/api/tenants/{tenant}/fleet",
        "/api/tenants/{tenant}/turns",
        "/api/tenants/{tenant}/alerts",
        "/api/tenants/{tenant}/events",
        "/api/tenants/{tenant}/knowledge/collections",
        "/api/tenants/{tenant}/knowledge/jobs",
    ],
)
def test_a_real_tenants_console_routes_answer_as_the_document_says(
    hub_url: str, fuzz_hub: HubThread, path: str
) -> None:
    # Generated tenant names almost never exist: ask about one that does, once.
    schema = schemathesis.openapi.from_url(f"{hub_url}/api/openapi.json")
    operation = schema[path]["GET"]
    case = operation.Case(path_parameters={"tenant": "acme"})
    headers = expiring_bearer(fuzz_hub) if path.endswith("/events") else bearer(hub_url)

    response = case.call_and_validate(base_url=hub_url, headers=headers, checks=CHECKS, timeout=10)

    assert response.status_code == 200

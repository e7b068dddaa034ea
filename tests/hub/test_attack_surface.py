"""Issue 12, rows 4, 7, 11, 12 and the hub's own HTTPS: attacks on a running hub app (the
real ``create_app``, a real SQLite file, real HTTP on loopback; no broker is needed, ingest
keeps retrying in the background)."""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import sqlite3
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from konak.devtools.mosquitto import free_port
from konak.hub.app import create_app, reload_hub
from konak.hub.cli import tls_context
from konak.hub.errors import ConfigError
from konak.hub.keys import AUTH, METRICS, SETTINGS
from konak.hub.security.audit import PLATFORM_TENANT, UNPROVEN_LIMIT
from konak.hub.security.rbac import Role
from konak.hub.security.settings import RateLimit, SigningKey
from konak.hub.security.state import AuthState
from konak.hub.settings import (
    FleetMcpSettings,
    HttpSettings,
    HubSettings,
    MqttSettings,
    TenantSettings,
)
from tests.conftest import KonakMain, one_error_line
from tests.hub.api.conftest import PASSWORD, SECRET, TENANTS, auth_settings

METRICS_TOKEN = "metrics-token-for-tests-0123456789"
ROOT = "root@konak.test"
ACME_ADMIN = "admin@acme.test"
GLOBEX_ADMIN = "admin@globex.test"


def make_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` and its key, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "hub.crt", directory / "hub.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def hub_settings(tmp_path: Path, **kw: Any) -> HubSettings:
    """A hub with tenants acme and globex, the API on, no broker and no konak-fleet."""
    auth = auth_settings(**kw.pop("auth", {}))
    return HubSettings(
        database_path=tmp_path / "hub.sqlite3",
        mqtt=MqttSettings(port=free_port(), reconnect_seconds=5.0),
        fleet_mcp=FleetMcpSettings(enabled=False),
        tenants={t: TenantSettings(t) for t in TENANTS},
        auth=auth,
        **kw,
    )


@dataclasses.dataclass
class RunningHub:
    """A hub app served on loopback, with an admin of each tenant and a superadmin."""

    client: TestClient[web.Request, web.Application]
    app: web.Application

    @property
    def state(self) -> AuthState:
        """The API's parts."""
        return self.app[AUTH]

    async def token(self, email: str) -> str:
        """A fresh access token of ``email``."""
        resp = await self.client.post(
            "/api/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return str(body["access_token"])

    async def bearer(self, email: str) -> dict[str, str]:
        """The Authorization header of a fresh session of ``email``."""
        return {"Authorization": f"Bearer {await self.token(email)}"}

    def audit_rows(self, tenant: str) -> list[sqlite3.Row]:
        """Every audit record of ``tenant`` (straight from the table)."""
        return list(
            self.state.db.execute(
                "SELECT * FROM audit_log WHERE tenant_id = ? ORDER BY id", (tenant,)
            )
        )

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample of the hub's metrics."""
        return self.app[METRICS].value(name, labels)


StartHub = Callable[..., Any]


@pytest.fixture
async def start_hub(tmp_path: Path) -> AsyncIterator[StartHub]:
    """``await start_hub(**settings_kw)``: a running hub; all are stopped after the test."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(**kw: Any) -> RunningHub:
        app = create_app(hub_settings(tmp_path, **kw))
        users = app[AUTH].users
        for tenant in TENANTS:
            users.assign(
                tenant, users.create_user(f"admin@{tenant}.test", PASSWORD).user_id, Role.ADMIN
            )
        users.create_user(ROOT, PASSWORD, superadmin=True)
        client = TestClient(TestServer(app))
        try:
            await client.start_server()
        except BaseException:
            await client.close()
            raise
        clients.append(client)
        return RunningHub(client, app)

    yield start
    for client in clients:
        await client.close()


# -- row 4: the audit log ----------------------------------------------------------------


async def test_requests_that_prove_no_identity_write_nothing_into_the_tenant_their_url_names(
    start_hub: StartHub,
) -> None:
    hub: RunningHub = await start_hub()
    globex = await hub.bearer(GLOBEX_ADMIN)
    forged = {"Authorization": "Bearer not-a-token"}
    attempts = [
        ("/api/tenants/acme/users", {"email": "x@evil.test", "role": "admin"}, {}),
        ("/api/tenants/acme/claims", {}, forged),
        ("/api/tenants/acme/claims", {}, globex),  # a signed-in user of another tenant
        ("/api/tenants/no-such-tenant/claims", {}, {}),
    ]
    statuses = []
    for path, body, headers in attempts:
        resp = await hub.client.post(path, json=body, headers=headers)
        statuses.append(resp.status)

    assert statuses == [401, 401, 404, 401]
    assert hub.audit_rows("acme") == []
    assert hub.audit_rows("no-such-tenant") == []
    platform = hub.audit_rows(PLATFORM_TENANT)
    refused = [(r["actor"], r["target"], r["status"]) for r in platform if r["status"] >= 400]
    assert refused == [
        ("anonymous", "/api/tenants/acme/users", 401),
        ("anonymous", "/api/tenants/acme/claims", 401),
        (GLOBEX_ADMIN, "/api/tenants/acme/claims", 404),
        ("anonymous", "/api/tenants/no-such-tenant/claims", 401),
    ]
    # What the acme admin reads is acme's own activity only.
    resp = await hub.client.get("/api/tenants/acme/audit", headers=await hub.bearer(ACME_ADMIN))
    assert (await resp.json())["entries"] == []


async def test_an_admins_own_request_is_still_audited_under_the_tenant(
    start_hub: StartHub,
) -> None:
    hub: RunningHub = await start_hub()
    resp = await hub.client.post(
        "/api/tenants/acme/claims", json={}, headers=await hub.bearer(ACME_ADMIN)
    )

    assert resp.status == 201
    rows = hub.audit_rows("acme")
    assert [(r["actor"], r["action"], r["status"]) for r in rows] == [
        (ACME_ADMIN, "devices.claim", 201)
    ]


async def test_a_flood_of_refused_requests_adds_a_bounded_number_of_audit_rows(
    start_hub: StartHub,
) -> None:
    hub: RunningHub = await start_hub()
    flood = 4 * UNPROVEN_LIMIT.burst
    for i in range(flood):
        resp = await hub.client.post(f"/api/tenants/t{i}/claims", json={})
        assert resp.status == 401

    written = len(hub.audit_rows(PLATFORM_TENANT))
    # The cap refills at per_second; even a very slow run writes far fewer than the flood.
    assert UNPROVEN_LIMIT.burst <= written < 2 * UNPROVEN_LIMIT.burst
    assert hub.metric("konak_hub_audit_suppressed_total") == flood - written
    assert hub.metric("konak_hub_http_refused_total", {"code": "unauthenticated"}) == flood
    assert hub.state.db.execute("SELECT count(*) FROM audit_log").fetchone()[0] == written


async def test_rate_limited_requests_are_counted_not_written_into_the_audit_log(
    start_hub: StartHub,
) -> None:
    hub: RunningHub = await start_hub(auth={"ip_limit": RateLimit(3, 0.001)})
    statuses = []
    for _ in range(40):
        resp = await hub.client.post(
            "/api/auth/login", json={"email": "nobody@x.test", "password": "wrong-wrong-wrong"}
        )
        statuses.append(resp.status)

    assert statuses.count(429) == 37
    assert len(hub.audit_rows(PLATFORM_TENANT)) == 3  # the three that were answered
    assert hub.metric("konak_hub_http_refused_total", {"code": "rate_limited"}) == 37


def _fill_audit(db: sqlite3.Connection, tenant: str, rows: int, target_chars: int = 10) -> None:
    with db:
        db.executemany(
            "INSERT INTO audit_log (at, tenant_id, actor, action, target, ip, outcome, status) "
            "VALUES (?, ?, 'a@x.test', 'devices.claim', ?, '127.0.0.1', 'ok', 201)",
            ((float(i), tenant, f"{i}:" + "t" * target_chars) for i in range(rows)),
        )


async def test_the_audit_export_reads_bounded_pages_and_sends_every_row_chunked(
    start_hub: StartHub,
) -> None:
    hub: RunningHub = await start_hub()
    rows = 2_345
    _fill_audit(hub.state.db, "acme", rows)
    _fill_audit(hub.state.db, "globex", 10)
    headers = await hub.bearer(ACME_ADMIN)
    statements: list[str] = []
    hub.state.db.set_trace_callback(statements.append)
    try:
        resp = await hub.client.get("/api/tenants/acme/audit.jsonl", headers=headers)
        text = await resp.text()
    finally:
        hub.state.db.set_trace_callback(None)

    assert resp.status == 200
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in resp.headers
    entries = [json.loads(line) for line in text.splitlines()]
    ids = [e["id"] for e in entries]
    assert len(entries) == rows
    assert {e["tenant_id"] for e in entries} == {"acme"}
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == rows
    reads = [s for s in statements if re.search(r"FROM audit_log", s, re.IGNORECASE)]
    assert len(reads) >= 2
    assert all(re.search(r"LIMIT \d+\s*$", s) for s in reads), reads


async def test_the_audit_export_streams_rows_while_the_client_reads(
    start_hub: StartHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub: RunningHub = await start_hub()
    rows, target_chars = 20_000, 2_000  # ~40 MB: far more than socket buffers hold
    _fill_audit(hub.state.db, "acme", rows, target_chars)
    headers = await hub.bearer(ACME_ADMIN)
    produced = 0
    export = hub.state.audit.export

    def counting_export(query: Any) -> Iterator[str]:
        nonlocal produced
        for line in export(query):
            produced += 1
            yield line

    monkeypatch.setattr(hub.state.audit, "export", counting_export)
    async with hub.client.get("/api/tenants/acme/audit.jsonl", headers=headers) as resp:
        first = await resp.content.readline()
        produced_before_first_line_arrived = produced
        received = 1
        async for _line in resp.content:
            received += 1

    assert json.loads(first)["tenant_id"] == "acme"
    assert received == rows
    # The hub had made only what the sockets could hold when the client got its first line.
    assert produced_before_first_line_arrived < rows // 2


# -- row 11: /metrics ----------------------------------------------------------------------


async def test_metrics_refuse_anonymous_and_wrong_tokens_and_answer_the_metrics_token(
    start_hub: StartHub,
) -> None:
    hub: RunningHub = await start_hub(http=HttpSettings(metrics_token=METRICS_TOKEN))
    answers = {}
    for who, headers in {
        "anonymous": {},
        "wrong": {"Authorization": "Bearer metrics-token-for-tests-WRONG"},
        "basic": {"Authorization": f"Basic {METRICS_TOKEN}"},
        "tenant admin": await hub.bearer(ACME_ADMIN),
        "superadmin": await hub.bearer(ROOT),
        "metrics token": {"Authorization": f"Bearer {METRICS_TOKEN}"},
    }.items():
        resp = await hub.client.get("/metrics", headers=headers)
        answers[who] = (resp.status, await resp.text())

    assert {who: status for who, (status, _) in answers.items()} == {
        "anonymous": 401,
        "wrong": 401,
        "basic": 401,
        "tenant admin": 403,
        "superadmin": 200,
        "metrics token": 200,
    }
    assert "konak_hub_devices_online" not in answers["anonymous"][1]
    assert "konak_hub_intents_total" in answers["metrics token"][1]


async def test_metrics_without_a_configured_token_refuse_everyone_but_the_superadmin(
    start_hub: StartHub,
) -> None:
    hub: RunningHub = await start_hub()
    anonymous = await hub.client.get("/metrics")
    empty = await hub.client.get("/metrics", headers={"Authorization": "Bearer "})
    root = await hub.client.get("/metrics", headers=await hub.bearer(ROOT))

    assert (anonymous.status, empty.status, root.status) == (401, 401, 200)
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")


# -- row 12: response headers -----------------------------------------------------------------


async def test_every_response_forbids_caching_and_sniffing_and_names_no_versions(
    start_hub: StartHub,
) -> None:
    hub: RunningHub = await start_hub()
    login = await hub.client.post("/api/auth/login", json={"email": ROOT, "password": PASSWORD})
    refresh = await hub.client.post(
        "/api/auth/refresh", json={"refresh_token": (await login.json())["refresh_token"]}
    )
    answers = {
        "login": login,
        "refresh": refresh,
        "refused": await hub.client.get("/api/auth/me"),
        # (any other path is the web console's page when it is built: cached with no-cache)
        "not found": await hub.client.get("/api/no/such/path"),
        "health": await hub.client.get("/healthz"),
    }

    for name, resp in answers.items():
        assert resp.headers["Cache-Control"] == "no-store", name
        assert resp.headers["X-Content-Type-Options"] == "nosniff", name
        assert resp.headers["Server"] == "konak-hub", name
        assert "Strict-Transport-Security" not in resp.headers, name  # plain HTTP
    assert (login.status, refresh.status) == (200, 200)


# -- row 16's part: the hub's own HTTPS ----------------------------------------------------------


async def test_the_hub_serves_https_with_its_certificate_and_sends_hsts_only_there(
    tmp_path: Path,
) -> None:
    cert, key = make_certificate(tmp_path)
    http = HttpSettings(tls_cert_file=cert, tls_key_file=key, hsts_seconds=600)
    context = tls_context(http)
    assert context is not None
    app = create_app(hub_settings(tmp_path, http=http))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
        port = int(runner.addresses[0][1])
        trust = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{port}/healthz", ssl=trust) as resp:
                headers = resp.headers
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/healthz") as plain:
                    await plain.read()
    finally:
        await runner.cleanup()

    assert headers["Strict-Transport-Security"] == "max-age=600"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_check_config_refuses_a_key_that_does_not_match_the_certificate_in_one_line(
    tmp_path: Path, konak_main: KonakMain
) -> None:
    cert, _ = make_certificate(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, wrong_key = make_certificate(other)
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\ndatabase_path = "{tmp_path}/hub.sqlite3"\n\n'
        f'[http]\ntls_cert_file = "{cert}"\ntls_key_file = "{wrong_key}"\n'
    )

    line = one_error_line(konak_main("hub", "check-config", "--config", str(config)))

    assert "[http] tls_cert_file/tls_key_file: cannot load" in line
    assert line.endswith("[config_invalid]")


def test_the_metrics_token_comes_from_a_file_or_the_environment_never_the_config(
    tmp_path: Path, konak_main: KonakMain
) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\ndatabase_path = "{tmp_path}/hub.sqlite3"\n\n[http]\nmetrics_token = "inline"\n'
    )

    line = one_error_line(konak_main("hub", "check-config", "--config", str(config)))

    assert "metrics_token_env or metrics_token_file" in line


# -- row 7: reloading signing keys ---------------------------------------------------------------


def _keys(*kids: str) -> tuple[SigningKey, ...]:
    return tuple(SigningKey(kid, "HS256", secret=SECRET + kid) for kid in kids)


async def test_a_reload_that_removes_a_key_refuses_its_tokens_and_signs_with_the_new_one(
    start_hub: StartHub,
) -> None:
    import jwt

    hub: RunningHub = await start_hub(auth={"keys": _keys("k1", "k2"), "active_kid": "k1"})
    old = await hub.token(ROOT)
    settings = hub.app[SETTINGS].current
    rotated = dataclasses.replace(
        settings, auth=dataclasses.replace(settings.auth, keys=_keys("k2"), active_kid="k2")
    )

    await reload_hub(hub.app, rotated)
    with_old = await hub.client.get("/api/auth/me", headers={"Authorization": f"Bearer {old}"})
    new = await hub.token(ROOT)
    with_new = await hub.client.get("/api/auth/me", headers={"Authorization": f"Bearer {new}"})

    assert jwt.get_unverified_header(old)["kid"] == "k1"
    assert with_old.status == 401
    assert (await with_old.json())["error"]["code"] == "token_invalid"
    assert jwt.get_unverified_header(new)["kid"] == "k2"
    assert with_new.status == 200


async def test_a_reload_that_needs_a_restart_changes_nothing_and_says_what(
    start_hub: StartHub,
) -> None:
    hub: RunningHub = await start_hub(auth={"keys": _keys("k1", "k2"), "active_kid": "k1"})
    settings = hub.app[SETTINGS].current
    mixed = dataclasses.replace(
        settings,
        mqtt=dataclasses.replace(settings.mqtt, port=settings.mqtt.port + 1),
        auth=dataclasses.replace(
            settings.auth, keys=_keys("k2"), active_kid="k2", argon2_time_cost=2
        ),
    )

    with pytest.raises(ConfigError) as refused:
        await reload_hub(hub.app, mixed)
    token = await hub.token(ROOT)

    assert "[mqtt]" in refused.value.message
    assert "[auth] argon2_time_cost" in refused.value.message
    assert "nothing was changed" in refused.value.message
    assert hub.app[SETTINGS].current is settings
    import jwt

    assert jwt.get_unverified_header(token)["kid"] == "k1"

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from konak.hub.api.http import declare
from konak.hub.api.routes import CONSOLE_ROUTES, ROUTES, setup_api
from konak.hub.security.rbac import Action, Role
from konak.hub.settings import HubSettings
from tests.hub.api.conftest import PASSWORD, Api, auth_settings

SQL_METACHARACTERS = [
    "'; DROP TABLE users; --",
    '" OR "1"="1',
    "admin@acme.test' --",
    "x'); DELETE FROM audit_log; --@a.b",
    "%_\\",
]


async def test_a_wrong_password_and_an_unknown_user_look_the_same(api: Api) -> None:
    bodies = []
    for email in ("admin@acme.test", "nobody@acme.test"):
        resp = await api.client.post(
            "/api/auth/login", json={"email": email, "password": "wrong-password-123"}
        )
        assert resp.status == 401
        bodies.append(await resp.json())
    assert bodies[0] == bodies[1]


async def test_the_e_mail_is_case_insensitive_at_login(api: Api) -> None:
    assert (await api.login("Admin@ACME.test"))["token_type"] == "Bearer"


async def test_changing_the_password_signs_every_session_out(api: Api) -> None:
    first = await api.token("member@acme.test")
    resp = await api.client.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": "violet-harbour-engine-42"},
        headers=first,
    )
    assert resp.status == 204
    assert (await api.client.get("/api/auth/me", headers=first)).status == 401
    await api.login("member@acme.test", "violet-harbour-engine-42")
    resp = await api.client.post(
        "/api/auth/login", json={"email": "member@acme.test", "password": PASSWORD}
    )
    assert resp.status == 401


@pytest.mark.parametrize(
    ("current", "new", "status", "code"),
    [
        ("wrong-password-123", "violet-harbour-engine-42", 401, "bad_credentials"),
        (PASSWORD, "password1234", 400, "weak_password"),
        (PASSWORD, "short", 400, "weak_password"),
    ],
)
async def test_a_password_change_needs_the_current_password_and_a_strong_new_one(
    api: Api, current: str, new: str, status: int, code: str
) -> None:
    headers = await api.token("member@acme.test")
    resp = await api.client.post(
        "/api/auth/password",
        json={"current_password": current, "new_password": new},
        headers=headers,
    )
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code
    await api.login("member@acme.test")  # the old password still works


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_body"),
        (b"[]", "application/json", 400, "invalid_body"),
        (b"null", "application/json", 400, "invalid_body"),
        (b'{"email": "a@b.cd"}', "application/json", 400, "invalid_body"),
        (b'{"email": 5, "password": "x"}', "application/json", 400, "invalid_body"),
        (
            b'{"email": "a@b.cd", "password": "x", "admin": true}',
            "application/json",
            400,
            "invalid_body",
        ),
        (b'{"email": "a@b.cd", "password": "x"}', "text/plain", 415, "unsupported_media_type"),
        (b"\xff\xfe\x00", "application/json", 400, "invalid_body"),
    ],
)
async def test_malformed_bodies_get_a_clear_error(
    api: Api, body: bytes, content_type: str, status: int, code: str
) -> None:
    resp = await api.client.post(
        "/api/auth/login", data=body, headers={"Content-Type": content_type}
    )
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code


async def test_an_invalid_body_names_the_field_without_echoing_it(api: Api) -> None:
    resp = await api.client.post("/api/auth/login", json={"email": "no-at-sign", "password": "x"})
    details = (await resp.json())["error"]["details"]
    assert [d["field"] for d in details] == ["email"]
    assert "no-at-sign" not in json.dumps(details)


async def test_an_oversized_body_is_refused_before_it_is_parsed(api: Api) -> None:
    big = json.dumps({"email": "a@b.cd", "password": "x" * 100_000}).encode()
    resp = await api.client.post(
        "/api/auth/login", data=big, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "body_too_large"


async def test_an_oversized_chunked_body_is_refused_too(api: Api) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b" " * 8192

    resp = await api.client.post(
        "/api/auth/login", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413


@pytest.mark.parametrize("value", SQL_METACHARACTERS)
async def test_sql_metacharacters_in_every_string_field_are_only_data(api: Api, value: str) -> None:
    admin = await api.token("admin@acme.test")
    root = await api.token("root@konak.test")
    login = await api.client.post("/api/auth/login", json={"email": value, "password": value})
    assert login.status in (400, 401)
    refresh = await api.client.post("/api/auth/refresh", json={"refresh_token": value})
    assert refresh.status == 401
    email = f"{value.replace('@', '')}@x.io".replace(" ", "")
    member = await api.client.post(
        "/api/tenants/acme/users",
        json={"email": email, "role": "member", "password": "violet-harbour-engine-42"},
        headers=admin,
    )
    assert member.status in (201, 400)
    tenant = await api.client.post(
        "/api/tenants", json={"tenant_id": value, "name": value}, headers=root
    )
    assert tenant.status == 400
    named = await api.client.post(
        "/api/tenants", json={"tenant_id": "initech", "name": value}, headers=root
    )
    assert named.status in (201, 409)
    audit = await api.client.get(
        "/api/tenants/acme/audit", params={"actor": value, "action": value}, headers=admin
    )
    assert (await audit.json())["entries"] == []
    claim = await api.client.post("/api/tenants/acme/claims", json={}, headers=admin)
    token = (await claim.json())["token"]
    enroll = await api.client.post("/api/enroll", json={"token": token, "name": value})
    assert enroll.status in (201, 401)
    users = await api.client.get("/api/tenants/acme/users", headers=admin)
    assert {u["email"] for u in (await users.json())["users"]} >= {"admin@acme.test"}
    assert api.state.users.by_email("admin@acme.test") is not None
    assert api.state.db.execute("SELECT count(*) FROM audit_log").fetchone()[0] > 0


async def test_every_route_is_in_the_openapi_document_with_its_action(api: Api) -> None:
    resp = await api.client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    operations = {
        (method.upper(), path): op
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    assert set(operations) == {(r.method, r.path) for r in ROUTES + CONSOLE_ROUTES}
    login = operations[("POST", "/api/auth/login")]
    ref = login["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
    assert operations[("GET", "/api/auth/me")]["security"] == [{"bearer": []}]


async def test_a_route_that_declares_no_action_is_refused(tmp_path: Any) -> None:
    async def forgotten(request: web.Request) -> web.Response:
        return web.json_response({"secret": True})

    @declare(Action.PUBLIC)
    async def fine(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    setup_api(app, HubSettings(database_path=tmp_path / "db", auth=auth_settings()))
    app.router.add_get("/forgotten", forgotten)
    app.router.add_get("/fine", fine)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/forgotten")
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "undeclared_route"
        assert (await client.get("/fine")).status == 200
        assert (await client.get("/nowhere")).status == 404


async def test_without_signing_keys_the_api_is_absent_but_the_guard_still_denies(
    tmp_path: Any,
) -> None:
    async def forgotten(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    setup_api(app, HubSettings(database_path=tmp_path / "db"))
    app.router.add_get("/forgotten", forgotten)
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/api/auth/login", json={})).status == 404
        assert (await client.get("/forgotten")).status == 403


async def test_me_lists_every_tenant_role_of_a_user(api: Api) -> None:
    user = api.state.users.by_email("operator@acme.test")
    assert user is not None
    api.state.users.assign("globex", user.user_id, Role.READONLY)
    resp = await api.client.get("/api/auth/me", headers=await api.token("operator@acme.test"))
    assert (await resp.json())["roles"] == {"acme": "operator", "globex": "readonly"}

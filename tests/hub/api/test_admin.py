from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from konak.hub.security.errors import Forbidden, NotFound, Unauthenticated
from konak.hub.security.rbac import ROLE_ACTIONS, Action, Identity, Resource, Role, authorize
from tests.hub.api.conftest import Api

NEW_PASSWORD = "violet-harbour-engine-42"

# (method, path, body, the action it takes) for every tenant-scoped route.
TENANT_ROUTES: list[tuple[str, str, dict[str, Any] | None, Action]] = [
    ("GET", "/api/tenants/{t}/users", None, Action.USERS_READ),
    (
        "POST",
        "/api/tenants/{t}/users",
        {"email": "new@x.io", "role": "member"},
        Action.USERS_WRITE,
    ),
    ("PUT", "/api/tenants/{t}/users/{u}/role", {"role": "readonly"}, Action.USERS_WRITE),
    ("DELETE", "/api/tenants/{t}/users/{u}", None, Action.USERS_WRITE),
    ("GET", "/api/tenants/{t}/audit", None, Action.AUDIT_READ),
    ("GET", "/api/tenants/{t}/audit.jsonl", None, Action.AUDIT_READ),
    ("POST", "/api/tenants/{t}/claims", {}, Action.DEVICES_CLAIM),
    ("GET", "/api/tenants/{t}/devices", None, Action.DEVICES_READ),
    ("DELETE", "/api/tenants/{t}/devices/kitchen", None, Action.DEVICES_REVOKE),
    ("GET", "/api/tenants/{t}/mcp-servers", None, Action.MCP_READ),
    ("GET", "/api/tenants/{t}/mcp-servers/tools", None, Action.MCP_READ),
    (
        "POST",
        "/api/tenants/{t}/mcp-servers",
        {"name": "tools", "url": "http://127.0.0.1:9/mcp"},
        Action.MCP_WRITE,
    ),
    (
        "PUT",
        "/api/tenants/{t}/mcp-servers/tools",
        {"url": "http://127.0.0.1:9/mcp"},
        Action.MCP_WRITE,
    ),
    ("DELETE", "/api/tenants/{t}/mcp-servers/tools", None, Action.MCP_WRITE),
    ("GET", "/api/tenants/{t}/knowledge/collections", None, Action.KNOWLEDGE_READ),
    ("POST", "/api/tenants/{t}/knowledge/collections", {"name": "n"}, Action.KNOWLEDGE_WRITE),
    ("POST", "/api/tenants/{t}/knowledge/search", {"vector": [1.0]}, Action.KNOWLEDGE_READ),
    ("POST", "/api/tenants/{t}/knowledge/collections/n/import", {}, Action.KNOWLEDGE_IMPORT),
    ("GET", "/api/tenants/{t}/knowledge/collections/n/export.jsonl", None, Action.KNOWLEDGE_EXPORT),
    ("DELETE", "/api/tenants/{t}/knowledge/jobs/j", None, Action.KNOWLEDGE_IMPORT),
]


async def call(api: Api, route: tuple[str, str, Any, Action], tenant: str, headers: Any) -> int:
    method, path, body, _ = route
    target = api.state.users.by_email("member@acme.test")
    assert target is not None
    url = path.format(t=tenant, u=target.user_id)
    resp = await api.client.request(method, url, json=body, headers=headers)
    return resp.status


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
async def test_another_tenants_admin_sees_not_found_for_every_resource(
    api: Api, route: tuple[str, str, Any, Action]
) -> None:
    assert await call(api, route, "acme", await api.token("admin@globex.test")) == 404


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
@pytest.mark.parametrize("role", list(Role))
async def test_each_role_may_do_exactly_what_the_role_table_says(
    api: Api, route: tuple[str, str, Any, Action], role: Role
) -> None:
    await api.client.post(
        "/api/tenants/acme/claims", json={}, headers=await api.token("admin@acme.test")
    )
    status = await call(api, route, "acme", await api.token(f"{role.value}@acme.test"))
    if route[3] in ROLE_ACTIONS[role]:
        assert status not in (401, 403), f"{role} may {route[3]}"
    else:
        assert status == 403


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
async def test_every_tenant_route_needs_a_token(
    api: Api, route: tuple[str, str, Any, Action]
) -> None:
    assert await call(api, route, "acme", {}) == 401


async def test_only_the_superadmin_creates_tenants(api: Api) -> None:
    body = {"tenant_id": "initech", "name": "Initech"}
    for email in ("admin@acme.test", "admin@globex.test"):
        resp = await api.client.post("/api/tenants", json=body, headers=await api.token(email))
        assert resp.status == 403
    root = await api.token("root@konak.test")
    assert (await api.client.post("/api/tenants", json=body, headers=root)).status == 201
    assert (await api.client.post("/api/tenants", json=body, headers=root)).status == 409


async def test_users_see_only_their_own_tenants_and_the_superadmin_sees_all(api: Api) -> None:
    resp = await api.client.get("/api/tenants", headers=await api.token("admin@globex.test"))
    assert [t["tenant_id"] for t in (await resp.json())["tenants"]] == ["globex"]
    resp = await api.client.get("/api/tenants", headers=await api.token("root@konak.test"))
    assert [t["tenant_id"] for t in (await resp.json())["tenants"]] == ["acme", "globex"]


async def test_an_admin_cannot_set_a_password_for_a_new_user(api: Api) -> None:
    admin = await api.token("admin@acme.test")
    resp = await api.client.post(
        "/api/tenants/acme/users",
        json={"email": "Dana@Acme.test", "role": "operator", "password": NEW_PASSWORD},
        headers=admin,
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["details"][0]["field"] == "password"
    assert api.state.users.by_email("dana@acme.test") is None


async def test_without_mail_adding_a_user_is_not_enabled_for_any_address(api: Api) -> None:
    admin = await api.token("admin@acme.test")
    answers = []
    for email in ("dana@acme.test", "admin@globex.test", "root@konak.test"):
        resp = await api.client.post(
            "/api/tenants/acme/users", json={"email": email, "role": "admin"}, headers=admin
        )
        answers.append((resp.status, (await resp.json())["error"]["code"]))
    assert answers == [(404, "not_enabled")] * 3
    assert api.state.users.by_email("dana@acme.test") is None
    assert "acme" not in api.state.users.roles(
        api.state.users.by_email("admin@globex.test").user_id
    )  # type: ignore[union-attr]


async def test_a_role_change_takes_effect_on_the_next_request(api: Api) -> None:
    operator = await api.token("operator@acme.test")
    assert (
        await api.client.post("/api/tenants/acme/claims", json={}, headers=operator)
    ).status == 201
    user = api.state.users.by_email("operator@acme.test")
    assert user is not None
    resp = await api.client.put(
        f"/api/tenants/acme/users/{user.user_id}/role",
        json={"role": "readonly"},
        headers=await api.token("admin@acme.test"),
    )
    assert resp.status == 200
    assert (
        await api.client.post("/api/tenants/acme/claims", json={}, headers=operator)
    ).status == 403


async def test_a_tenant_admin_cannot_change_the_superadmin(api: Api) -> None:
    root = api.state.users.by_email("root@konak.test")
    assert root is not None
    api.state.users.assign("acme", root.user_id, Role.READONLY)
    resp = await api.client.delete(
        f"/api/tenants/acme/users/{root.user_id}", headers=await api.token("admin@acme.test")
    )
    assert resp.status == 403


async def test_an_invalid_role_is_a_clear_error(api: Api) -> None:
    resp = await api.client.post(
        "/api/tenants/acme/users",
        json={"email": "x@acme.test", "role": "superadmin"},
        headers=await api.token("admin@acme.test"),
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["details"][0]["field"] == "role"


def test_devices_may_only_send_intents_for_their_own_tenant() -> None:
    device = Identity.device("acme", "kitchen")
    authorize(device, Action.INTENT_SEND, Resource("acme"))
    with pytest.raises(Forbidden):
        authorize(device, Action.INTENT_SEND, Resource("globex"))
    with pytest.raises(Forbidden):
        authorize(device, Action.DEVICES_READ, Resource("acme"))


def test_anonymous_callers_are_refused_everything_but_public_actions() -> None:
    authorize(None, Action.LOGIN, Resource(None))
    with pytest.raises(Unauthenticated):
        authorize(None, Action.DEVICES_READ, Resource("acme"))


def test_a_user_without_a_role_in_a_tenant_cannot_tell_it_exists() -> None:
    user = Identity("u1", roles={"globex": Role.ADMIN})
    with pytest.raises(NotFound):
        authorize(user, Action.TENANT_READ, Resource("acme"))
    with pytest.raises(Forbidden):
        authorize(user, Action.TENANTS_CREATE, Resource(None))


# -- audit ---------------------------------------------------------------------------------
async def test_logins_mutations_and_denials_are_audited_with_who_what_where_and_outcome(
    api: Api,
) -> None:
    await api.client.post(
        "/api/auth/login", json={"email": "admin@acme.test", "password": "wrong-password-1"}
    )
    admin = await api.token("admin@acme.test")
    await api.client.post("/api/tenants/acme/claims", json={}, headers=admin)
    await api.client.post(
        "/api/tenants/acme/claims", json={}, headers=await api.token("readonly@acme.test")
    )
    await api.client.post("/api/auth/logout", headers=admin)

    rows = api.state.db.execute(
        "SELECT tenant_id, actor, action, target, ip, outcome, status FROM audit_log ORDER BY id"
    ).fetchall()
    got = [tuple(r) for r in rows]
    assert (
        "",
        "admin@acme.test",
        "auth.login",
        "user:admin@acme.test",
        "127.0.0.1",
        "denied",
        401,
    ) in got
    assert (
        "",
        "admin@acme.test",
        "auth.login",
        "user:admin@acme.test",
        "127.0.0.1",
        "ok",
        200,
    ) in got
    assert ("acme", "admin@acme.test", "devices.claim", "claim", "127.0.0.1", "ok", 201) in got
    assert (
        "acme",
        "readonly@acme.test",
        "devices.claim",
        "/api/tenants/acme/claims",
        "127.0.0.1",
        "denied",
        403,
    ) in got
    assert ("", "admin@acme.test", "auth.self", "/api/auth/logout", "127.0.0.1", "ok", 204) in got


async def test_reads_are_not_audited(api: Api) -> None:
    await api.client.get("/api/auth/me", headers=await api.token("admin@acme.test"))
    actions = [r[0] for r in api.state.db.execute("SELECT action FROM audit_log")]
    assert actions == ["auth.login"]


async def test_the_audit_log_is_append_only(api: Api) -> None:
    await api.login("admin@acme.test")
    for sql in ("UPDATE audit_log SET outcome = 'ok'", "DELETE FROM audit_log"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            api.state.db.execute(sql)


async def test_the_audit_log_filters_pages_and_exports_json_lines_of_one_tenant(
    api: Api,
) -> None:
    admin = await api.token("admin@acme.test")
    for _ in range(5):
        await api.client.post("/api/tenants/acme/claims", json={}, headers=admin)
    globex = await api.token("admin@globex.test")
    await api.client.post("/api/tenants/globex/claims", json={}, headers=globex)

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"action": "devices.claim", "limit": 2}
        if cursor is not None:
            params["before_id"] = cursor
        resp = await api.client.get("/api/tenants/acme/audit", params=params, headers=admin)
        page = await resp.json()
        seen += [e["id"] for e in page["entries"]]
        assert all(e["tenant_id"] == "acme" for e in page["entries"])
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == 5
    assert seen == sorted(seen, reverse=True)

    resp = await api.client.get(
        "/api/tenants/acme/audit.jsonl", params={"outcome": "ok"}, headers=admin
    )
    assert resp.headers["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert len(lines) == 5
    assert {line["tenant_id"] for line in lines} == {"acme"}


@pytest.mark.parametrize("path", ["/api/tenants/acme/audit", "/api/tenants/acme/audit.jsonl"])
@pytest.mark.parametrize(
    "params",
    [
        {"limit": "many"},
        {"since": "yesterday"},
        {"before_id": "1.5"},
        {"before_id": str(2**63)},
        {"limit": str(-(2**64))},
    ],
)
async def test_bad_audit_filters_get_a_clear_error(
    api: Api, path: str, params: dict[str, str]
) -> None:
    resp = await api.client.get(path, params=params, headers=await api.token("admin@acme.test"))
    assert resp.status == 400

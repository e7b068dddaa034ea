"""The MCP-server admin endpoints on a real SQLite file (no MCP host attached here; the
integration tests connect to a real server)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.hub.api.conftest import Api

URL = "/api/tenants/acme/mcp-servers"
SECRET_HEADER = "Bearer tenant-secret-0123456789"
SERVER = {
    "name": "tools",
    "url": "https://tools.example/mcp",
    "headers": {"Authorization": SECRET_HEADER, "X-Area": "kitchen"},
    "timeout_seconds": 5,
    "read_only_tools": ["echo"],
}


async def test_an_admin_adds_lists_replaces_and_removes_a_server_without_seeing_secrets(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = await api.token("admin@acme.test")

    created = await api.client.post(URL, json=SERVER, headers=admin)
    listed = await (await api.client.get(URL, headers=admin)).json()
    changed = await api.client.put(
        f"{URL}/tools",
        json={"url": "https://tools.example/v2", "headers": {"Authorization": None}},
        headers=admin,
    )
    one = await (await api.client.get(f"{URL}/tools", headers=admin)).json()
    stored = api.state.mcp_registry.get("acme", "tools") if api.state.mcp_registry else None
    removed = await api.client.delete(f"{URL}/tools", headers=admin)
    after = await (await api.client.get(URL, headers=admin)).json()

    assert created.status == 201
    assert [s["name"] for s in listed["servers"]] == ["tools"]
    assert listed["servers"][0]["headers"] == {"Authorization": "********", "X-Area": "********"}
    assert changed.status == 200
    assert one["url"] == "https://tools.example/v2"
    assert list(one["headers"]) == ["Authorization"]
    assert stored is not None
    assert stored.headers == {"Authorization": SECRET_HEADER}  # null kept the stored value
    assert removed.status == 204
    assert after["servers"] == []
    everything = json.dumps([listed, one]) + caplog.text
    assert "tenant-secret" not in everything


async def test_another_tenant_neither_sees_nor_changes_a_tenants_servers(api: Api) -> None:
    await api.client.post(URL, json=SERVER, headers=await api.token("admin@acme.test"))
    other = await api.token("admin@globex.test")

    reads = await api.client.get(URL, headers=other)
    own = await (await api.client.get("/api/tenants/globex/mcp-servers", headers=other)).json()
    deletes = await api.client.delete(f"{URL}/tools", headers=other)

    assert (reads.status, deletes.status) == (404, 404)
    assert own["servers"] == []
    assert api.state.mcp_registry is not None
    assert api.state.mcp_registry.get("acme", "tools") is not None


async def test_an_operator_reads_servers_but_may_not_change_them(api: Api) -> None:
    operator = await api.token("operator@acme.test")

    reads = await api.client.get(URL, headers=operator)
    writes = await api.client.post(URL, json=SERVER, headers=operator)

    assert (reads.status, writes.status) == (200, 403)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "http://user:pw@tools.example/mcp"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "http://[/mcp"}, "url"),
        ({"url": "http://[::1/mcp"}, "url"),
        ({"url": "http://tools.example:99999/mcp"}, "url"),
        ({"url": "http://tools.example:0/mcp"}, "url"),
        ({"name": "Bad Name"}, "name"),
        ({"headers": {"X-Evil": "a\r\nInjected: 1"}}, "headers.X-Evil"),
        ({"headers": {"Bad Header": "v"}}, "headers.Bad Header.[key]"),
        ({"headers": {f"X-{i}": "v" for i in range(21)}}, "headers"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": "5"}, "timeout_seconds"),
        ({"read_only_tools": ["ok", "no spaces"]}, "read_only_tools.1"),
        ({"command": "rm -rf /"}, "command"),
    ],
)
async def test_an_invalid_server_is_refused_with_the_field_and_nothing_is_stored(
    api: Api, change: dict[str, Any], field: str
) -> None:
    body = {**SERVER, **change}

    resp = await api.client.post(URL, json=body, headers=await api.token("admin@acme.test"))
    error = (await resp.json())["error"]

    assert resp.status == 400
    assert field in [d["field"] for d in error["details"]]
    assert api.state.mcp_registry is not None
    assert api.state.mcp_registry.of_tenant("acme") == []


async def test_adding_a_server_twice_or_changing_a_missing_one_is_a_clear_error(
    api: Api,
) -> None:
    admin = await api.token("admin@acme.test")
    await api.client.post(URL, json=SERVER, headers=admin)

    twice = await api.client.post(URL, json=SERVER, headers=admin)
    missing = await api.client.put(f"{URL}/nope", json={"url": SERVER["url"]}, headers=admin)
    new_null = await api.client.post(
        URL, json={**SERVER, "name": "other", "headers": {"A": None}}, headers=admin
    )
    keep_unknown = await api.client.put(
        f"{URL}/tools", json={"url": SERVER["url"], "headers": {"Never-Set": None}}, headers=admin
    )

    assert (twice.status, (await twice.json())["error"]["code"]) == (409, "conflict")
    assert missing.status == 404
    assert new_null.status == 400
    assert keep_unknown.status == 400
    assert api.state.mcp_registry is not None
    assert [s.name for s in api.state.mcp_registry.of_tenant("acme")] == ["tools"]


async def test_sql_metacharacters_in_every_string_field_are_stored_as_data(api: Api) -> None:
    admin = await api.token("admin@acme.test")
    evil = "x'); DROP TABLE tenant_mcp_servers; --"
    body = {
        "name": "tools",
        "url": "https://tools.example/mcp?q=" + evil.replace(" ", "%20"),
        "headers": {"X-Q": evil},
        "read_only_tools": ["x--drop"],
    }

    created = await api.client.post(URL, json=body, headers=admin)
    odd_name = await api.client.get(f"{URL}/x'%20OR%20'1'='1", headers=admin)

    assert created.status == 201
    assert odd_name.status == 404
    assert api.state.mcp_registry is not None
    stored = api.state.mcp_registry.get("acme", "tools")
    assert stored is not None
    assert stored.headers == {"X-Q": evil}
    assert stored.read_only_tools == ("x--drop",)


async def test_every_change_is_an_audit_record_naming_the_server(api: Api) -> None:
    admin = await api.token("admin@acme.test")
    await api.client.post(URL, json=SERVER, headers=admin)
    await api.client.put(f"{URL}/tools", json={"url": SERVER["url"]}, headers=admin)
    await api.client.delete(f"{URL}/tools", headers=admin)
    await api.client.post(URL, json=SERVER, headers=await api.token("member@acme.test"))

    page = await (await api.client.get("/api/tenants/acme/audit", headers=admin)).json()
    records = [
        (e["actor"], e["action"], e["target"], e["outcome"])
        for e in page["entries"]
        if e["action"] == "mcp.write"
    ]

    assert records == [
        ("member@acme.test", "mcp.write", "/api/tenants/acme/mcp-servers", "denied"),
        ("admin@acme.test", "mcp.write", "mcp:tools", "ok"),
        ("admin@acme.test", "mcp.write", "mcp:tools", "ok"),
        ("admin@acme.test", "mcp.write", "mcp:tools", "ok"),
    ]


async def test_the_openapi_document_describes_the_mcp_endpoints_with_their_actions(
    api: Api,
) -> None:
    doc = await (await api.client.get("/api/openapi.json")).json()

    ops = doc["paths"]["/api/tenants/{tenant}/mcp-servers/{name}"]

    assert ops["put"]["x-konak-action"] == "mcp.write"
    assert ops["get"]["x-konak-action"] == "mcp.read"
    assert "McpServerCreateBody" in doc["components"]["schemas"]

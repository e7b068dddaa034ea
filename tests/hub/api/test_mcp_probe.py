"""Testing an MCP server's connection through the API (no MCP host here): the outbound policy
holds for the test too, and the list shows each server's circuit and last error."""

from __future__ import annotations

from tests.hub.api.conftest import Api

URL = "/api/tenants/acme/mcp-servers"


async def test_a_server_the_policy_refuses_is_not_contacted_by_its_test(api: Api) -> None:
    admin = await api.token("admin@acme.test")
    api.state.db.execute(
        """INSERT INTO tenant_mcp_servers VALUES ('acme', 'inside', 'http://127.0.0.1:9/mcp',
               '{}', 5, '[]', 0)"""
    )  # stored before a policy change: the API itself would refuse it now

    tested = await api.client.post(f"{URL}/inside/test", headers=admin)
    listed = await (await api.client.get(URL, headers=admin)).json()

    answer = await tested.json()
    assert tested.status == 200
    assert (answer["ok"], answer["tools"]) == (False, [])
    assert "127.0.0.1" in answer["error"] or "address" in answer["error"]
    [server] = listed["servers"]
    assert (server["circuit"], server["last_error"]) == ("closed", None)


async def test_only_the_tenants_admin_tests_its_servers(api: Api) -> None:
    for who, status in (
        ("operator@acme.test", 403),
        ("readonly@acme.test", 403),
        ("admin@globex.test", 404),
        ("admin@acme.test", 404),  # no such server
    ):
        resp = await api.client.post(f"{URL}/nothing/test", headers=await api.token(who))
        assert resp.status == status, who

"""``GET /api/auth/me`` tells the console what each user may do in each tenant."""

from __future__ import annotations

from konak.hub.security.rbac import ROLE_ACTIONS, Role
from tests.hub.api.conftest import Api


async def test_me_lists_each_roles_actions_per_tenant(api: Api) -> None:
    readonly = await (
        await api.client.get("/api/auth/me", headers=await api.token("readonly@acme.test"))
    ).json()
    admin = await (
        await api.client.get("/api/auth/me", headers=await api.token("admin@globex.test"))
    ).json()

    assert readonly["permissions"] == {
        "acme": ["alerts.read", "devices.read", "knowledge.read", "tenant.read", "voice.read"]
    }
    assert readonly["platform_permissions"] == []
    assert admin["permissions"] == {"globex": sorted(a.value for a in ROLE_ACTIONS[Role.ADMIN])}
    assert "voice.write" in admin["permissions"]["globex"]


async def test_the_superadmin_holds_every_tenant_action_everywhere_and_the_platforms(
    api: Api,
) -> None:
    root = await (
        await api.client.get("/api/auth/me", headers=await api.token("root@konak.test"))
    ).json()

    everything = sorted(a.value for a in ROLE_ACTIONS[Role.ADMIN])
    assert root["permissions"] == {"acme": everything, "globex": everything}
    assert root["platform_permissions"] == ["tenants.create"]

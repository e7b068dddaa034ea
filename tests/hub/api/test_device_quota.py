"""The max_devices quota, enforced when a device enrols."""

from __future__ import annotations

from typing import Any

from konak.hub.quotas import QuotaSettings, TenantQuota
from konak.hub.security.audit import AuditQuery
from tests.hub.api.conftest import Api


async def claim(api: Api, tenant: str, email: str, device: str | None = None) -> str:
    resp = await api.client.post(
        f"/api/tenants/{tenant}/claims",
        json={} if device is None else {"device": device},
        headers=await api.token(email),
    )
    assert resp.status == 201
    token: str = (await resp.json())["token"]
    return token


async def enrol(api: Api, token: str, device: str) -> tuple[int, Any]:
    resp = await api.client.post(
        "/api/enroll", json={"token": token, "name": device, "device": device}
    )
    return resp.status, await resp.json()


async def test_enrolment_beyond_max_devices_is_refused_and_the_token_kept(api: Api) -> None:
    api.state.quotas = QuotaSettings(tenants={"acme": TenantQuota(max_devices=2)})
    for device in ("one", "two"):
        assert (await enrol(api, await claim(api, "acme", "operator@acme.test"), device))[0] == 201
    token = await claim(api, "acme", "operator@acme.test")
    status, body = await enrol(api, token, "three")
    assert (status, body["error"]["code"]) == (403, "quota_exceeded")
    assert api.provisioner.created == [("acme", "one"), ("acme", "two")]
    # Another tenant is not affected by acme's quota.
    assert (await enrol(api, await claim(api, "globex", "admin@globex.test"), "one"))[0] == 201
    # A token for any device cannot take over an enrolled one (issue 12 row 16) ...
    status, body = await enrol(api, await claim(api, "acme", "operator@acme.test"), "two")
    assert (status, body["error"]["code"]) == (409, "device_enrolled")
    # ... one minted for it re-enrols it, which replaces it and does not count twice.
    again = await claim(api, "acme", "operator@acme.test", device="two")
    assert (await enrol(api, again, "two"))[0] == 201
    # Revoking a device frees a place; the refused token was not used up.
    revoked = await api.client.delete(
        "/api/tenants/acme/devices/one", headers=await api.token("operator@acme.test")
    )
    assert revoked.status == 204
    assert (await enrol(api, token, "three"))[0] == 201
    entries, _ = api.state.audit.page(AuditQuery(tenant_id="acme", action="devices.enroll"))
    assert [e.status for e in reversed(entries)] == [201, 201, 403, 409, 201, 201]

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from konak.provisioning.enroll import (
    EnrollError,
    Enrolment,
    enroll,
    read_credentials,
    write_credentials,
)
from tests.hub.api.conftest import Api


async def claim(api: Api) -> str:
    resp = await api.client.post(
        "/api/tenants/acme/claims", json={}, headers=await api.token("operator@acme.test")
    )
    assert resp.status == 201
    token: str = (await resp.json())["token"]
    return token


def url(api: Api) -> str:
    return str(api.client.make_url("/"))


async def test_enrolling_stores_the_broker_login_in_a_0600_file(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "etc" / "credentials.json"
    token = await claim(api)
    got = await asyncio.to_thread(enroll, url(api), token, "Kitchen Pi", "kitchen", path)
    assert (got.tenant, got.device, got.username) == ("acme", "kitchen-pi", "acme.kitchen-pi")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_credentials(path) == got
    assert api.provisioner.created == [("acme", "kitchen-pi")]
    devices = await api.client.get(
        "/api/tenants/acme/devices", headers=await api.token("readonly@acme.test")
    )
    assert (await devices.json())["devices"][0]["area"] == "kitchen"


async def test_a_claim_token_enrols_only_one_device(api: Api, tmp_path: Path) -> None:
    token = await claim(api)
    await asyncio.to_thread(enroll, url(api), token, "Kitchen", None, tmp_path / "a.json")
    with pytest.raises(EnrollError, match="claim_invalid"):
        await asyncio.to_thread(enroll, url(api), token, "Hall", None, tmp_path / "b.json")
    assert not (tmp_path / "b.json").exists()


async def test_re_enrolling_after_a_revocation_issues_new_credentials(
    api: Api, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    first = await asyncio.to_thread(enroll, url(api), await claim(api), "Kitchen", None, path)
    operator = await api.token("operator@acme.test")
    resp = await api.client.delete("/api/tenants/acme/devices/kitchen", headers=operator)
    assert resp.status == 204
    second = await asyncio.to_thread(enroll, url(api), await claim(api), "Kitchen", None, path)
    assert first.password != second.password
    assert read_credentials(path).password == second.password


async def test_a_claim_token_cannot_take_over_an_enrolled_device(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    first = await asyncio.to_thread(enroll, url(api), await claim(api), "Kitchen", None, path)
    leaked = await claim(api)
    with pytest.raises(EnrollError, match=r"already enrolled.*\[device_enrolled\]"):
        await asyncio.to_thread(enroll, url(api), leaked, "Kitchen", None, tmp_path / "x.json")
    assert api.provisioner.created == [("acme", "kitchen")]
    assert read_credentials(path) == first
    # The refused token is still good for a device id that is free.
    other = await asyncio.to_thread(enroll, url(api), leaked, "Hall", None, tmp_path / "h.json")
    assert other.device == "hall"


async def test_a_claim_token_minted_for_an_enrolled_device_re_enrols_it(
    api: Api, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    first = await asyncio.to_thread(enroll, url(api), await claim(api), "Kitchen", None, path)
    bound = api.state.claims.mint("acme", "operator@acme.test", 60, device_id="kitchen").token
    second = await asyncio.to_thread(enroll, url(api), bound, "Kitchen", None, path)
    assert second.password != first.password


async def test_a_claim_token_minted_for_a_device_id_enrols_that_id_whatever_the_name(
    api: Api, tmp_path: Path
) -> None:
    bound = api.state.claims.mint("acme", "operator@acme.test", 60, device_id="hall-pi").token
    path = tmp_path / "c.json"
    got = await asyncio.to_thread(enroll, url(api), bound, "Hall", "hall", path, device="hall-pi")
    assert (got.device, got.username) == ("hall-pi", "acme.hall-pi")
    assert read_credentials(path) == got


def test_the_login_is_sent_only_over_https_except_to_this_machine(tmp_path: Path) -> None:
    with pytest.raises(EnrollError) as info:
        enroll("http://hub.example.org:8380", "kc_x", "Kitchen", None, tmp_path / "c.json")
    assert info.value.code == "insecure_hub_url"
    assert not (tmp_path / "c.json").exists()


def test_a_credentials_file_names_the_client_id_the_broker_binds_the_login_to(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.json"
    write_credentials(path, Enrolment("acme", "k", "h", 1883, "acme.k", "pw", "acme.k"))
    assert read_credentials(path).client_id == "acme.k"
    # A file written before client ids were issued: the username is the client id.
    path.write_text(
        '{"tenant": "acme", "device": "k", "host": "h", "port": 1883, '
        '"username": "acme.k", "password": "pw"}'
    )
    assert read_credentials(path).client_id == "acme.k"


async def test_revoking_an_enrolled_device_deletes_its_broker_identity(
    api: Api, tmp_path: Path
) -> None:
    await asyncio.to_thread(enroll, url(api), await claim(api), "Kitchen", None, tmp_path / "c")
    operator = await api.token("operator@acme.test")
    resp = await api.client.delete("/api/tenants/acme/devices/kitchen", headers=operator)
    assert resp.status == 204
    assert api.provisioner.revoked == [("acme", "kitchen")]
    again = await api.client.delete("/api/tenants/acme/devices/kitchen", headers=operator)
    assert again.status == 404


async def test_another_tenant_cannot_revoke_a_device(api: Api, tmp_path: Path) -> None:
    await asyncio.to_thread(enroll, url(api), await claim(api), "Kitchen", None, tmp_path / "c")
    resp = await api.client.delete(
        "/api/tenants/globex/devices/kitchen", headers=await api.token("admin@globex.test")
    )
    assert resp.status == 404
    assert api.provisioner.revoked == []


@pytest.mark.parametrize("hub", ["ftp://hub", "hub.local", ""])
def test_a_hub_url_that_is_not_http_is_refused(hub: str, tmp_path: Path) -> None:
    with pytest.raises(EnrollError) as info:
        enroll(hub, "kc_x", "Kitchen", None, tmp_path / "c.json")
    assert info.value.code == "bad_hub_url"


def test_an_unreachable_hub_is_a_clear_error(tmp_path: Path) -> None:
    from konak.devtools.mosquitto import free_port

    with pytest.raises(EnrollError) as info:
        enroll(f"http://127.0.0.1:{free_port()}", "kc_x", "Kitchen", None, tmp_path / "c.json")
    assert info.value.code == "unreachable"


def test_a_leftover_credentials_file_is_replaced_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    (tmp_path / "c.json.tmp").write_text("old")
    (tmp_path / "c.json.tmp").chmod(0o644)
    write_credentials(path, Enrolment("acme", "k", "h", 1883, "acme.k", "pw"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_corrupt_credentials_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text("{")
    with pytest.raises(EnrollError) as info:
        read_credentials(tmp_path / "c.json")
    assert info.value.code == "bad_file"

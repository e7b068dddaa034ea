"""Enrolment end to end: a hub with the API on a real Mosquitto with the dynamic-security
plugin, a device enrolling with a claim token, talking on its own topics, being revoked."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from konak.devtools.mosquitto import Credentials, Mosquitto
from konak.devtools.probe import MqttProbe, ProbeError
from konak.hub.keys import AUTH
from konak.hub.security.rbac import Role
from konak.hub.security.settings import AuthSettings, ProvisioningSettings, SigningKey
from konak.protocol import Intent, Kind, Reply, decode_as, subscription
from konak.provisioning.enroll import Enrolment, enroll, read_credentials
from tests.integration.hub.conftest import WAIT_SECONDS, RunningHub, hub_settings

PASSWORD = "violet-harbour-engine-42"

pytestmark = pytest.mark.integration


@pytest.fixture
def dynsec_broker() -> Iterator[Mosquitto]:
    with Mosquitto(dynsec=True) as broker:
        yield broker


def device_probe(login: Enrolment) -> MqttProbe:
    creds = Credentials(login.username, login.password)
    return MqttProbe(login.host, login.port, creds, login.client_id).connect()


async def start(hubs: Any, broker: Mosquitto, tmp_path: Path, **kw: Any) -> tuple[RunningHub, str]:
    """A hub with the API and provisioning on ``broker``; ``kw`` replaces settings."""
    settings = dataclasses.replace(
        hub_settings(broker, tmp_path),
        auth=AuthSettings(
            keys=(SigningKey("k1", "HS256", secret="integration-secret-" + "x" * 20),),
            active_kid="k1",
            argon2_time_cost=1,
            argon2_memory_kib=64,
        ),
        provisioning=ProvisioningSettings(
            enabled=True, username=broker.admin.username, password=broker.admin.password
        ),
        **kw,
    )
    running: RunningHub = await hubs(settings)
    users = running.runner.app[AUTH].users
    operator = users.create_user("ops@acme.test", PASSWORD)
    users.assign("acme", operator.user_id, Role.OPERATOR)
    return running, f"http://127.0.0.1:{running.http_port}"


async def operator_headers(http: ClientSession, url: str) -> dict[str, str]:
    resp = await http.post(
        f"{url}/api/auth/login", json={"email": "ops@acme.test", "password": PASSWORD}
    )
    assert resp.status == 200
    return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


async def mint(http: ClientSession, url: str, headers: dict[str, str]) -> str:
    resp = await http.post(f"{url}/api/tenants/acme/claims", json={}, headers=headers)
    assert resp.status == 201
    token: str = (await resp.json())["token"]
    return token


async def test_an_enrolled_device_talks_to_the_hub_and_revocation_cuts_it_off(
    dynsec_broker: Mosquitto, hubs: Any, tmp_path: Path
) -> None:
    _, url = await start(hubs, dynsec_broker, tmp_path)
    creds = tmp_path / "credentials.json"
    async with ClientSession() as http:
        headers = await operator_headers(http, url)
        token = await mint(http, url, headers)
        login = await asyncio.to_thread(enroll, url, token, "Kitchen", "kitchen", creds)
        assert (login.tenant, login.device) == ("acme", "kitchen")

        dev = await asyncio.to_thread(device_probe, login)
        try:
            own_replies = Reply(tenant="acme", device="kitchen", turn_id="t-00000000").topic
            assert not (await asyncio.to_thread(dev.subscribe, own_replies))[0].is_failure
            for tenant, device in (("acme", "hall"), ("globex", "kitchen")):
                other = subscription(Kind.REPLY, tenant=tenant, device=device)
                granted = await asyncio.to_thread(dev.subscribe, other)
                assert granted[0].is_failure, f"may not read {tenant}/{device}"

            turn = Intent(tenant="acme", device="kitchen", turn_id="turn-enrol-01", text="hm")
            await asyncio.to_thread(dev.publish, turn.topic, turn.to_payload())
            got = await asyncio.to_thread(dev.next, WAIT_SECONDS)
            reply = decode_as(Reply, got.payload, topic=got.topic)
            assert (reply.turn_id, reply.outcome) == ("turn-enrol-01", "no_route")

            disconnected = threading.Event()
            dev.client.on_disconnect = lambda *args: disconnected.set()
            resp = await http.delete(f"{url}/api/tenants/acme/devices/kitchen", headers=headers)
            assert resp.status == 204
            assert await asyncio.to_thread(disconnected.wait, WAIT_SECONDS)
        finally:
            dev.close()
        with pytest.raises(ProbeError, match="refused"):
            await asyncio.to_thread(device_probe, login)

        # Once revoked, the device id is free again: a new claim re-enrols it.
        again = await asyncio.to_thread(
            enroll, url, await mint(http, url, headers), "Kitchen", "kitchen", creds
        )
        assert again.password != login.password
        (await asyncio.to_thread(device_probe, again)).close()


async def test_enrolment_with_a_used_or_made_up_token_creates_no_broker_identity(
    dynsec_broker: Mosquitto, hubs: Any, tmp_path: Path
) -> None:
    from konak.provisioning.dynsec import DynsecAdmin
    from konak.provisioning.enroll import EnrollError

    _, url = await start(hubs, dynsec_broker, tmp_path)
    async with ClientSession() as http:
        headers = await operator_headers(http, url)
        token = await mint(http, url, headers)
        await asyncio.to_thread(enroll, url, token, "Kitchen", None, tmp_path / "a.json")
        for attempt in (token, "kc_made-up-token"):
            with pytest.raises(EnrollError, match="claim_invalid"):
                await asyncio.to_thread(enroll, url, attempt, "Hall", None, tmp_path / "b.json")
    admin = dynsec_broker.admin
    with DynsecAdmin(dynsec_broker.host, dynsec_broker.port, admin.username, admin.password) as a:
        clients = await asyncio.to_thread(a.list_clients)
    assert "acme.kitchen" in clients
    assert "acme.hall" not in clients


async def test_konak_daemon_enroll_writes_the_login_the_daemon_then_uses(
    dynsec_broker: Mosquitto, hubs: Any, tmp_path: Path
) -> None:
    import sys

    from konak.daemon.settings import parse

    _, url = await start(hubs, dynsec_broker, tmp_path)
    creds = tmp_path / "var" / "credentials.json"
    async with ClientSession() as http:
        token = await mint(http, url, await operator_headers(http, url))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "konak.cli",
        "daemon",
        "enroll",
        "--hub",
        url,
        "--token",
        token,
        "--name",
        "Hall Pi",
        "--area",
        "hall",
        "--credentials",
        str(creds),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), WAIT_SECONDS)
    assert proc.returncode == 0, err.decode()
    assert "enrolled as acme/hall-pi" in out.decode()
    assert token not in out.decode() + err.decode(), "the claim token is not echoed"

    settings = parse(
        {
            "device": {"tenant": "acme", "device": "hall-pi"},
            "hub": {"credentials_file": str(creds)},
        },
        base_dir=tmp_path,
        default_models_dir=tmp_path,
    )
    login = Credentials(settings.hub.username or "", settings.hub.password or "")
    client_id = read_credentials(creds).client_id
    assert client_id == "acme.hall-pi"
    dev = await asyncio.to_thread(
        lambda: MqttProbe(settings.hub.host, settings.hub.port, login, client_id).connect()
    )
    try:
        own = Reply(tenant="acme", device="hall-pi", turn_id="t-00000000").topic
        assert not (await asyncio.to_thread(dev.subscribe, own))[0].is_failure
    finally:
        dev.close()

"""Issue 12, rows 7, 11, 12 and the hub's own HTTPS against ``konak hub run`` as a process on
the real broker: a SIGHUP after removing a compromised signing key, /metrics behind its
token, HSTS over the hub's own TLS."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from konak.devtools.mosquitto import Mosquitto, free_port
from tests.hub.api.conftest import PASSWORD
from tests.hub.test_attack_surface import METRICS_TOKEN, ROOT, make_certificate

pytestmark = pytest.mark.integration

WAIT_SECONDS = 30.0


def _config(tmp_path: Path, broker: Mosquitto, port: int, kids: tuple[str, ...]) -> str:
    cert, key = tmp_path / "hub.crt", tmp_path / "hub.key"
    keys = "".join(
        f'\n[auth.keys.{kid}]\nalgorithm = "HS256"\nsecret_file = "{tmp_path}/{kid}.secret"\n'
        for kid in kids
    )
    return f"""
[hub]
database_path = "{tmp_path}/hub.sqlite3"
http_host = "127.0.0.1"
http_port = {port}
log_file = "{tmp_path}/hub.jsonl"

[http]
tls_cert_file = "{cert}"
tls_key_file = "{key}"
metrics_token_file = "{tmp_path}/metrics.token"

[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "{broker.admin.username}"
password_env = "TEST_HUB_MQTT_PASSWORD"

[fleet_mcp]
enabled = false

[auth]
active_kid = "{kids[-1]}"
argon2_time_cost = 1
argon2_memory_kib = 64
{keys}"""


async def _datagram(sock: socket.socket) -> str:
    data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 4096), WAIT_SECONDS)
    return data.decode()


async def _login(http: aiohttp.ClientSession, base: str) -> str:
    async with http.post(
        f"{base}/api/auth/login", json={"email": ROOT, "password": PASSWORD}
    ) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["access_token"])


async def _me(http: aiohttp.ClientSession, base: str, token: str) -> tuple[int, Any]:
    async with http.get(
        f"{base}/api/auth/me", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        return resp.status, await resp.json()


async def test_sighup_after_removing_a_compromised_key_refuses_its_tokens_over_the_hubs_https(
    broker: Mosquitto, tmp_path: Path
) -> None:
    cert, _ = make_certificate(tmp_path)
    for kid in ("k1", "k2"):
        (tmp_path / f"{kid}.secret").write_text(f"{kid}-" + "s" * 40)
    (tmp_path / "metrics.token").write_text(METRICS_TOKEN + "\n")
    port = free_port()
    config = tmp_path / "hub.toml"
    # k1 signs; k2 is already there, as a rotation would have it.
    config.write_text(_config(tmp_path, broker, port, ("k2", "k1")))
    env = {**os.environ, "TEST_HUB_MQTT_PASSWORD": broker.admin.password}
    subprocess.run(
        [sys.executable, "-m", "konak.cli", "hub", "add-user", "--config", str(config),
         "--email", ROOT, "--superadmin"],
        env={**env, "KONAK_NEW_PASSWORD": PASSWORD}, check=True, capture_output=True,
    )  # fmt: skip
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "konak.cli", "hub", "run", "--config", str(config),
        env={**env, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        ready = await _datagram(notify)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as http:
            async with http.get(f"{base}/healthz") as resp:
                hsts = resp.headers.get("Strict-Transport-Security")
                server = resp.headers.get("Server")
            async with http.get(f"{base}/metrics") as resp:
                anonymous_metrics = resp.status
            async with http.get(
                f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
            ) as resp:
                scraped = (resp.status, await resp.text())
            compromised = await _login(http, base)
            before = await _me(http, base, compromised)

            # Remove the compromised k1; k2 signs from now on.
            config.write_text(_config(tmp_path, broker, port, ("k2",)))
            proc.send_signal(signal.SIGHUP)
            reload_states = [await _datagram(notify), await _datagram(notify)]
            after = await _me(http, base, compromised)
            fresh = await _login(http, base)
            with_fresh = await _me(http, base, fresh)

            # A change only a restart can make is refused as a whole, and said so.
            config.write_text(
                _config(tmp_path, broker, port, ("k2",)).replace(
                    "argon2_time_cost = 1", "argon2_time_cost = 2"
                )
            )
            proc.send_signal(signal.SIGHUP)
            refused_states = [await _datagram(notify), await _datagram(notify)]
            still = await _me(http, base, fresh)
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), WAIT_SECONDS)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        notify.close()

    assert ready.startswith("READY=1")
    assert hsts is not None
    assert hsts.startswith("max-age=")
    assert server == "konak-hub"
    assert anonymous_metrics == 401
    assert scraped[0] == 200
    assert "konak_hub_intents_total" in scraped[1]
    assert jwt.get_unverified_header(compromised)["kid"] == "k1"
    assert before[0] == 200
    assert reload_states == ["RELOADING=1", "READY=1"]
    assert after[0] == 401
    assert after[1]["error"]["code"] == "token_invalid"
    assert jwt.get_unverified_header(fresh)["kid"] == "k2"
    assert with_fresh[0] == 200
    assert refused_states == ["RELOADING=1", "READY=1"]
    assert still[0] == 200
    assert code == 0
    messages = [
        json.loads(line).get("message", "")
        for line in (tmp_path / "hub.jsonl").read_text().splitlines()
    ]
    assert any(m.startswith("hub listening on https://") for m in messages)
    assert any(m.startswith("configuration reloaded") for m in messages)
    refusal = [m for m in messages if m.startswith("configuration not reloaded")]
    assert len(refusal) == 1
    assert "[auth] argon2_time_cost" in refusal[0]
    assert METRICS_TOKEN not in (tmp_path / "hub.jsonl").read_text()

"""``konak hub run`` as systemd would run it: sd_notify, /metrics, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from konak.devtools.mosquitto import Mosquitto, free_port

from .conftest import Device, intent

pytestmark = pytest.mark.integration

METRICS_TOKEN = "prometheus-scrape-token-0123456789"


async def _datagram(sock: socket.socket) -> str:
    return (await asyncio.get_running_loop().sock_recv(sock, 4096)).decode()


async def test_konak_hub_run_notifies_systemd_serves_metrics_reloads_and_stops_on_sigterm(
    broker: Mosquitto, tmp_path: Path, devices: Callable[..., Device]
) -> None:
    port, fleet_port = free_port(), free_port()
    config = tmp_path / "hub.toml"
    config.write_text(
        f"""
[hub]
database_path = "{tmp_path}/hub.sqlite3"
http_port = {port}
log_file = "{tmp_path}/hub.jsonl"

[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "{broker.admin.username}"
password_env = "TEST_HUB_MQTT_PASSWORD"

[fleet_mcp]
port = {fleet_port}

[http]
metrics_token_env = "TEST_HUB_METRICS_TOKEN"
"""
    )
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "TEST_HUB_MQTT_PASSWORD": broker.admin.password,
        "TEST_HUB_METRICS_TOKEN": METRICS_TOKEN,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "konak.cli", "hub", "run", "--config", str(config), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        ready = await asyncio.wait_for(_datagram(notify), 30)
        pi = devices("hall-pi")
        await pi.send(intent("hall-pi", "t-service-01", "Nothing"))
        reply = await pi.reply()
        async with aiohttp.ClientSession() as http:
            async with http.get(
                f"http://127.0.0.1:{port}/metrics",
                headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            ) as resp:
                metrics = await resp.text()
            async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                health = await resp.json()
        proc.send_signal(signal.SIGHUP)
        reloading = await asyncio.wait_for(_datagram(notify), 30)
        reloaded = await asyncio.wait_for(_datagram(notify), 30)
        proc.send_signal(signal.SIGTERM)
        stopping = await asyncio.wait_for(_datagram(notify), 30)
        code = await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        notify.close()

    assert ready.startswith("READY=1")
    assert reply.outcome == "no_route"
    assert 'konak_hub_intents_total{outcome="no_route"} 1.0' in metrics
    assert 'konak_hub_messages_in_total{kind="intent"} 1.0' in metrics
    assert health == {"ok": True, "mqtt": True}
    assert (reloading, reloaded) == ("RELOADING=1", "READY=1")
    assert stopping == "STOPPING=1"
    assert code == 0
    log = (tmp_path / "hub.jsonl").read_text()
    assert '"logger": "konak.hub.ingest"' in log
    assert broker.admin.password not in log
    assert METRICS_TOKEN not in log

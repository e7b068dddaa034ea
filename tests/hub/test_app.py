"""The app factory's start-up failures stop cleanly with a clear error."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from aiohttp import web

from konak.hub.app import create_app
from konak.hub.errors import HubError
from konak.hub.keys import FLEET_MCP_PORT
from konak.hub.settings import FleetMcpSettings, HubSettings, MqttSettings


async def test_a_taken_konak_fleet_port_fails_start_up_with_a_clear_error(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    settings = HubSettings(
        database_path=tmp_path / "hub.sqlite3",
        # Nothing listens here: ingest keeps retrying in the background.
        mqtt=MqttSettings(port=port, reconnect_seconds=0.05),
        fleet_mcp=FleetMcpSettings(port=port),
    )
    app = create_app(settings)
    runner = web.AppRunner(app)

    try:
        with pytest.raises(HubError, match="konak-fleet could not listen") as caught:
            await runner.setup()
    finally:
        await runner.cleanup()
        taken.close()

    assert caught.value.code == "fleet_listen"
    assert FLEET_MCP_PORT not in app

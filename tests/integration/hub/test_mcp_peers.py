"""The hub as an MCP host against real MCP servers, and konak-fleet against the Inspector."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from konak.devtools.mosquitto import Mosquitto, free_port
from konak.hub.app import reload_hub
from konak.hub.breaker import CircuitState
from konak.hub.mcp_host import McpConnection
from konak.hub.settings import Binding, McpServerSettings, ToolCall
from konak.protocol import Cmd, decode_as

from .conftest import (
    FILESYSTEM,
    FLEET_TOKEN,
    NODE_MODULES,
    Device,
    ZigbeeLights,
    everything_stdio,
    home_server,
    hub_settings,
    intent,
    start_everything_http,
    stop_process,
)

pytestmark = pytest.mark.integration

INSPECTOR = NODE_MODULES / "@modelcontextprotocol/inspector-cli/build/index.js"
# Inspector 0.15 (the Node 20 line) has no --header option; this preload adds the bearer
# token to its fetch calls, as --header does in later versions.
FETCH_WITH_TOKEN = (
    "const f=globalThis.fetch;globalThis.fetch=(u,o={})=>{const h=new Headers(o.headers||{});"
    "h.set('Authorization','Bearer '+process.env.KONAK_FLEET_TOKEN);return f(u,{...o,headers:h})};"
)


async def test_the_hub_calls_server_everything_over_stdio_and_streamable_http(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Callable[..., Any],
    devices: Callable[..., Device],
    everything_http: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, _ = everything_http
    servers = (
        everything_stdio("stdio-everything"),
        McpServerSettings(name="http-everything", url=url, headers={"X-Test": "1"}),
    )
    bindings = {
        "SayOverHttp": Binding(
            "SayOverHttp",
            (ToolCall("echo", server="http-everything", arguments={"message": "over {how}"}),),
        )
    }
    await hubs(hub_settings(broker, tmp_path, servers, bindings=bindings))
    pi = devices("office-pi")

    await pi.send(intent("office-pi", "t-stdio-0001", "echo", slots={"message": "over stdio"}))
    over_stdio = await pi.reply()
    await pi.send(intent("office-pi", "t-http-00001", "SayOverHttp", slots={"how": "http"}))
    over_http = await pi.reply()

    assert (over_stdio.outcome, over_stdio.text) == ("ok", "Echo: over stdio")
    assert (over_http.outcome, over_http.text) == ("ok", "Echo: over http")


async def test_the_hub_reads_a_file_through_server_filesystem_with_a_binding(
    broker: Mosquitto, tmp_path: Path, hubs: Callable[..., Any], devices: Callable[..., Device]
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "shopping.txt").write_text("# Shopping\n\n- **milk** and bread.\n")
    server = McpServerSettings(name="files", command="node", args=(str(FILESYSTEM), str(notes)))
    bindings = {
        "ReadNote": Binding(
            "ReadNote",
            (ToolCall("read_text_file", arguments={"path": f"{notes}/{{note}}.txt"}),),
        )
    }
    await hubs(hub_settings(broker, tmp_path, (server,), bindings=bindings))
    pi = devices("office-pi")

    await pi.send(intent("office-pi", "t-files-0001", "ReadNote", slots={"note": "shopping"}))
    reply = await pi.reply()

    assert (reply.outcome, reply.text) == ("ok", "Shopping milk and bread.")


async def test_killing_a_server_mid_call_gives_the_fallback_while_other_intents_are_served(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Callable[..., Any],
    lights: ZigbeeLights,
    devices: Callable[..., Device],
    everything_http: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, proc = everything_http
    slow = McpServerSettings(name="slow", url=url, timeout_seconds=5.0, retries=0)
    running = await hubs(hub_settings(broker, tmp_path, (slow, home_server(broker, tmp_path))))
    conn = running.hub.mcp.connection("acme", "slow")
    assert isinstance(conn, McpConnection)
    in_flight = asyncio.Event()
    call_once = conn._call_once

    async def spy(tool: str, arguments: dict[str, Any]) -> Any:
        in_flight.set()
        return await call_once(tool, arguments)

    conn._call_once = spy  # type: ignore[method-assign]
    office, kitchen = devices("office-pi"), devices("kitchen-pi")
    long_op = intent(
        "office-pi", "t-long-00001", "trigger-long-running-operation", slots={"duration": 60}
    )

    await office.send(long_op)
    await asyncio.wait_for(in_flight.wait(), 20)
    proc.kill()
    await kitchen.send(
        intent("kitchen-pi", "t-light-0001", "HassTurnOn", slots={"name": "kitchen light"})
    )
    light = await kitchen.reply()
    fallback = await office.reply()

    assert (light.outcome, light.text) == ("ok", "Turned on the kitchen light.")
    assert fallback.outcome == "error"
    assert fallback.text == "Sorry, that didn't work. Please try again later."
    assert running.hub.metrics.value("konak_hub_intents_total", {"outcome": "error"}) == 1


async def test_a_server_that_hangs_opens_its_circuit_and_later_calls_fail_fast(
    broker: Mosquitto, tmp_path: Path, hubs: Callable[..., Any], devices: Callable[..., Device]
) -> None:
    hanging = everything_stdio(
        "hanging", timeout_seconds=0.5, retries=0, failure_threshold=2, circuit_reset_seconds=600
    )
    running = await hubs(hub_settings(broker, tmp_path, (hanging,)))
    pi = devices("office-pi")
    slots = {"duration": 5}  # far past the 0.5 s timeout; the teardown waits it out

    outcomes = []
    for n in range(3):
        await pi.send(
            intent("office-pi", f"t-hang-000{n}", "trigger-long-running-operation", slots=slots)
        )
        outcomes.append((await pi.reply()).outcome)

    conn = running.hub.mcp.connection("acme", "hanging")
    assert outcomes == ["error", "error", "error"]
    assert conn.breaker.state is CircuitState.OPEN
    labels = {"tenant": "acme", "server": "hanging"}
    assert running.hub.metrics.value("konak_hub_mcp_circuit_open", labels) == 1
    timeouts = {"server": "hanging", "result": "timeout"}
    assert running.hub.metrics.value("konak_hub_tool_call_seconds_count", timeouts) == 2


async def inspector(
    port: int, preload: Path, *args: str, token: str | None = FLEET_TOKEN, path: str = "/mcp"
) -> tuple[int, str]:
    """Run the MCP Inspector CLI against one of the hub's MCP servers (with a token)."""
    env = dict(os.environ)
    if token is not None:
        preload.write_text(FETCH_WITH_TOKEN)
        env["KONAK_FLEET_TOKEN"] = token
        env["NODE_OPTIONS"] = f"--import={preload.as_uri()}"
    # A blocking run in a thread: an asyncio subprocess transport collected after its
    # process ended can still warn "unclosed transport" under load.
    done = await asyncio.to_thread(
        subprocess.run,
        ["node", str(INSPECTOR), f"http://127.0.0.1:{port}{path}", "--transport", "http", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout.decode()


async def test_the_mcp_inspector_lists_and_calls_konak_fleet_tools_on_the_running_hub(
    broker: Mosquitto, tmp_path: Path, hubs: Callable[..., Any], devices: Callable[..., Device]
) -> None:
    running = await hubs(hub_settings(broker, tmp_path))
    pi = devices("kitchen-pi")
    await asyncio.to_thread(pi.probe.subscribe, "konak/v1/acme/kitchen-pi/cmd")
    await pi.online(area="kitchen", name="Kitchen")
    await running.hub.ingest.wait_dispatched(1, 10)
    port = running.hub.fleet_mcp_port

    rc_list, listed = await inspector(port, tmp_path / "token.mjs", "--method", "tools/list")
    rc_devices, devices_out = await inspector(
        port, tmp_path / "token.mjs", "--method", "tools/call", "--tool-name", "list_devices"
    )
    rc_call, called = await inspector(
        port,
        tmp_path / "token.mjs",
        "--method",
        "tools/call",
        "--tool-name",
        "announce",
        "--tool-arg",
        "text=Dinner is ready",
        "area=kitchen",
    )
    announced = await asyncio.to_thread(pi.probe.next, 20)
    rc_denied, _ = await inspector(
        port, tmp_path / "token.mjs", "--method", "tools/list", token=None
    )

    assert rc_list == 0
    names = {tool["name"] for tool in json.loads(listed)["tools"]}
    assert names == {"list_devices", "get_device_status", "announce"}
    assert rc_devices == 0
    fleet = json.loads(devices_out)["structuredContent"]["result"]
    assert [(d["device"], d["state"], d["area"]) for d in fleet] == [
        ("kitchen-pi", "online", "kitchen")
    ]
    assert rc_call == 0
    assert "Announced on 1 device(s)." in called
    cmd = decode_as(Cmd, announced.payload, topic=announced.topic)
    assert (cmd.action, cmd.text) == ("announce", "Dinner is ready")
    assert rc_denied != 0


async def test_a_server_that_comes_back_is_reconnected_and_serves_again(
    broker: Mosquitto, tmp_path: Path, hubs: Callable[..., Any], devices: Callable[..., Device]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    server = McpServerSettings(
        name="web", url=url, retries=0, backoff_initial_seconds=0.1, backoff_max_seconds=0.5
    )
    first = start_everything_http(port)
    running = await hubs(hub_settings(broker, tmp_path, (server,)))
    conn = running.hub.mcp.connection("acme", "web")
    pi = devices("office-pi")
    stop_process(first)

    await pi.send(intent("office-pi", "t-back-00001", "echo", slots={"message": "anyone?"}))
    while_down = await pi.reply()
    second = start_everything_http(port)
    try:
        await conn.wait_connects(2, 30)
        await pi.send(intent("office-pi", "t-back-00002", "echo", slots={"message": "back"}))
        when_back = await pi.reply()
    finally:
        stop_process(second)

    assert while_down.outcome == "error"
    assert (when_back.outcome, when_back.text) == ("ok", "Echo: back")


async def test_a_configuration_change_connects_the_new_server(
    broker: Mosquitto, tmp_path: Path, hubs: Callable[..., Any], devices: Callable[..., Device]
) -> None:
    settings = hub_settings(broker, tmp_path)
    running = await hubs(settings)
    pi = devices("office-pi")
    await pi.send(intent("office-pi", "t-conf-00001", "echo", slots={"message": "hi"}))
    before = await pi.reply()

    acme = replace(settings.tenants["acme"], mcp_servers=(everything_stdio(),))
    await reload_hub(running.hub.app, replace(settings, tenants={"acme": acme}))
    await running.hub.mcp.wait_ready("acme", 20)
    await pi.send(intent("office-pi", "t-conf-00002", "echo", slots={"message": "hi"}))
    after = await pi.reply()

    assert before.outcome == "no_route"
    assert (after.outcome, after.text) == ("ok", "Echo: hi")


async def test_a_read_only_tool_is_retried_after_a_timeout(
    broker: Mosquitto, tmp_path: Path, hubs: Callable[..., Any], devices: Callable[..., Device]
) -> None:
    # server-everything annotates trigger-long-running-operation readOnlyHint=true.
    server = everything_stdio("slow", timeout_seconds=0.5, retries=2, failure_threshold=10)
    running = await hubs(hub_settings(broker, tmp_path, (server,)))
    pi = devices("office-pi")

    await pi.send(
        intent("office-pi", "t-ro-000001", "trigger-long-running-operation", slots={"duration": 30})
    )
    reply = await pi.reply()

    assert reply.outcome == "error"
    timeouts = {"server": "slow", "result": "timeout"}
    assert running.hub.metrics.value("konak_hub_tool_call_seconds_count", timeouts) == 3

"""Knowledge in voice turns and over MCP, end to end: the real hub, broker, embedding model
and sqlite-vec store; devices with their own broker logins; konak-knowledge through the
MCP SDK's client and the MCP Inspector CLI."""

# The hub tests' fixtures (hubs, devices) are imported below and named as parameters.
# ruff: noqa: F811

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from konak.devtools.mosquitto import Mosquitto
from konak.hub.keys import KNOWLEDGE
from konak.hub.knowledge.routing import EXAMPLES_COLLECTION
from konak.hub.knowledge.service import KnowledgeService
from konak.hub.knowledge.settings import KnowledgeSettings
from konak.hub.knowledge.types import DocumentIn
from konak.hub.settings import HubSettings, McpServerSettings, TenantSettings
from konak.hub.turns import MISSING_TEXT, NOT_KNOWN_TEXT, NOT_UNDERSTOOD_TEXT
from konak.protocol import Intent, Reply
from tests.integration.hub.conftest import (  # noqa: F401 (fixtures)
    FLEET_TOKEN,
    Device,
    RunningHub,
    devices,
    everything_stdio,
    hub_settings,
    hubs,
)
from tests.integration.hub.test_mcp_peers import inspector

from .voice_calibration import CALIBRATED_ANSWER, CALIBRATED_ROUTING

pytestmark = pytest.mark.integration

GLOBEX_TOKEN = "globex-token-for-tests-9876543210"
ACME_WIFI = (
    "The guest wifi network is Konak-Guest and its password is blue-otter-42. The main "
    "network is for our own devices only, so please keep guests off it."
)
GLOBEX_WIFI = "Visitors use the Globex-Lobby network; its password is red-fox-7."
BINS = "The bins are collected on Tuesday mornings. Recycling goes out every second week."
Hubs = Callable[..., Any]
Devices = Callable[..., Device]


def knowledge_hub(
    broker: Mosquitto, tmp_path: Path, servers: tuple[McpServerSettings, ...] = (), **kw: Any
) -> HubSettings:
    """Tenants acme and globex, each with its konak-fleet token, and knowledge with the
    installed embedding model and the calibrated thresholds."""
    knowledge = KnowledgeSettings(
        directory=tmp_path / "knowledge",
        models_dir=Path(os.environ["KONAK_MODELS_DIR"]),
        answer_threshold=CALIBRATED_ANSWER,
        routing_threshold=CALIBRATED_ROUTING,
        **kw,
    )
    base = hub_settings(broker, tmp_path, servers, knowledge=knowledge)
    globex = TenantSettings(
        "globex", fleet_token_sha256=hashlib.sha256(GLOBEX_TOKEN.encode()).hexdigest()
    )
    return dataclasses.replace(base, tenants={**base.tenants, "globex": globex})


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The knowledge settings of each real backend: sqlite-vec, and PostgreSQL + pgvector
    (a database of the test's own on the session's server)."""
    if request.param == "sqlite":
        return {}
    return {"backend": "postgres", "postgres_dsn": request.getfixturevalue("postgres_dsn")}


def knowledge_of(running: RunningHub) -> KnowledgeService:
    """The running hub's knowledge service."""
    return running.hub.app[KNOWLEDGE]


async def add_note(
    service: KnowledgeService, tenant: str, doc_id: str, text: str, collection: str = "notes"
) -> None:
    """Upsert one note, creating the collection first if needed."""
    if collection not in {c.name for c in await service.list_collections(tenant)}:
        await service.create_collection(tenant, collection)
    await service.upsert(tenant, collection, [DocumentIn(doc_id, text)])


async def hub_with_notes(
    hubs: Hubs, settings: HubSettings, *notes: tuple[str, str, str]
) -> tuple[RunningHub, KnowledgeService]:
    """A running hub and its knowledge, holding ``(tenant, doc id, text)`` notes in each
    tenant's collection ``notes``."""
    running = await hubs(settings)
    service = knowledge_of(running)
    for tenant, doc_id, text in notes:
        await add_note(service, tenant, doc_id, text)
    return running, service


async def ask(
    device: Device, turn_id: str, text: str, name: str | None = None, **slots: Any
) -> Reply:
    """Send an intent (no intent name: only the transcript) from the device; the reply."""
    await device.send(
        Intent(
            tenant=device.tenant,
            device=device.device,
            turn_id=turn_id,
            text=text,
            intent=name,
            slots=slots,
        )
    )
    return await device.reply()


def spoken(reply: Reply) -> tuple[str, str]:
    """A reply's outcome and text."""
    return reply.outcome, reply.text


async def test_a_question_over_the_broker_is_answered_from_the_tenants_own_notes_only(
    broker: Mosquitto, tmp_path: Path, hubs: Hubs, backend: dict[str, Any], devices: Devices
) -> None:
    _, service = await hub_with_notes(
        hubs,
        knowledge_hub(broker, tmp_path, **backend),
        ("acme", "wifi", ACME_WIFI),
        ("acme", "bins", BINS),
    )
    kitchen, lobby = devices("kitchen-pi"), devices("lobby-pi", tenant="globex")

    acme = await ask(kitchen, "t-kn-acme-01", "what is the guest wi-fi password")
    globex_before = await ask(lobby, "t-kn-globex-01", "what is the guest wi-fi password")
    await add_note(service, "globex", "wifi", GLOBEX_WIFI)
    globex_after = await ask(lobby, "t-kn-globex-02", "what is the guest wi-fi password")
    asked = await ask(
        kitchen, "t-kn-acme-02", "ask my notes", "HassGetKnowledge", question="bin day"
    )
    unknown = await ask(
        kitchen, "t-kn-acme-03", "ask my notes", "HassGetKnowledge", question="the pizza place"
    )

    assert spoken(acme) == (
        "ok",
        "The guest wifi network is Konak-Guest and its password is blue-otter-42.",
    )
    assert spoken(globex_before) == ("no_route", NOT_UNDERSTOOD_TEXT)
    assert spoken(globex_after) == ("ok", GLOBEX_WIFI)
    assert spoken(asked) == ("ok", "The bins are collected on Tuesday mornings.")
    assert spoken(unknown) == ("no_route", NOT_KNOWN_TEXT)


async def test_a_reply_is_cached_for_its_tenant_until_a_write_to_its_collections(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Hubs,
    backend: dict[str, Any],
    devices: Devices,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="konak.hub.knowledge.answer")
    _, service = await hub_with_notes(
        hubs,
        knowledge_hub(broker, tmp_path, **backend),
        ("acme", "wifi", ACME_WIFI),
        ("globex", "wifi", GLOBEX_WIFI),
    )
    kitchen, lobby = devices("kitchen-pi"), devices("lobby-pi", tenant="globex")

    first = await ask(kitchen, "t-kn-cache-01", "what is the guest wi-fi password")
    again = await ask(kitchen, "t-kn-cache-02", "what's the guest wi-fi password")
    other_tenant = await ask(lobby, "t-kn-cache-03", "what is the guest wi-fi password")
    await add_note(service, "acme", "wifi", ACME_WIFI.replace("blue-otter-42", "green-owl-9"))
    after_write = await ask(kitchen, "t-kn-cache-04", "what's the guest wi-fi password")

    assert again.text == first.text
    assert "red-fox-7" in other_tenant.text
    assert "green-owl-9" in after_write.text
    sources = [
        (r.args[1], str(r.args[2]).split()[0])  # type: ignore[index]
        for r in caplog.records
        if str(r.msg).startswith("turn %s/%s answered by knowledge")
    ]
    assert sources == [
        ("t-kn-cache-01", "passage"),
        ("t-kn-cache-02", "cache"),
        ("t-kn-cache-03", "passage"),
        ("t-kn-cache-04", "passage"),
    ]


async def test_an_unmatched_transcript_goes_to_the_nearest_tool_whose_arguments_it_fills(
    broker: Mosquitto, tmp_path: Path, hubs: Hubs, devices: Devices
) -> None:
    running = await hubs(knowledge_hub(broker, tmp_path, (everything_stdio(),)))
    kitchen, lobby = devices("kitchen-pi"), devices("lobby-pi", tenant="globex")

    logo = await ask(kitchen, "t-kn-route-01", "show me the tiny logo")
    summed = await ask(kitchen, "t-kn-route-02", "what is the sum of two numbers")
    joke = await ask(kitchen, "t-kn-route-03", "tell me a joke")
    pockets = await ask(kitchen, "t-kn-route-04", "what have you got in your pockets")
    service = knowledge_of(running)
    await service.create_collection("acme", EXAMPLES_COLLECTION)
    await service.upsert(
        "acme",
        EXAMPLES_COLLECTION,
        [DocumentIn("env", "what have you got in your pockets", {"tool": "get-env"})],
    )
    pockets_with_example = await ask(kitchen, "t-kn-route-05", "what have you got in your pockets")
    globex_logo = await ask(lobby, "t-kn-route-06", "show me the tiny logo")

    assert logo.outcome == "ok"
    assert spoken(summed) == ("no_route", MISSING_TEXT)  # get-sum needs a and b
    assert spoken(joke) == ("no_route", NOT_UNDERSTOOD_TEXT)
    assert spoken(pockets) == ("no_route", NOT_UNDERSTOOD_TEXT)
    assert pockets_with_example.outcome == "ok"
    assert "PATH" in pockets_with_example.text or "HOME" in pockets_with_example.text
    assert spoken(globex_logo) == ("no_route", NOT_UNDERSTOOD_TEXT)  # globex has no tools


@contextlib.asynccontextmanager
async def _mcp_client(port: int, token: str | None) -> AsyncIterator[Any]:
    """The MCP SDK's client on konak-knowledge, with a bearer token (or none)."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"http://127.0.0.1:{port}/knowledge/mcp"
    async with create_mcp_http_client(headers=headers) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode="legacy", cache=None) as client:
            yield client


async def _search(port: int, token: str, query: str, **args: Any) -> list[dict[str, Any]]:
    async with _mcp_client(port, token) as client:
        result = await client.call_tool("search_knowledge", {"query": query, **args})
    assert not result.is_error, result
    assert result.structured_content is not None
    hits: list[dict[str, Any]] = result.structured_content["result"]
    return hits


async def test_konak_knowledge_over_mcp_serves_each_token_only_its_tenants_notes(
    broker: Mosquitto, tmp_path: Path, hubs: Hubs, backend: dict[str, Any]
) -> None:
    running, service = await hub_with_notes(
        hubs,
        knowledge_hub(broker, tmp_path, **backend),
        ("acme", "wifi", ACME_WIFI),
        ("globex", "wifi", GLOBEX_WIFI),
    )
    await add_note(service, "acme", "bins", BINS, collection="house")
    port = running.hub.fleet_mcp_port

    async with _mcp_client(port, FLEET_TOKEN) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        listed = await client.call_tool("list_collections", {})
        bad_k = await client.call_tool("search_knowledge", {"query": "wifi", "k": 0})
        missing = await client.call_tool(
            "search_knowledge", {"query": "wifi", "collection": "nope"}
        )
    acme = await _search(port, FLEET_TOKEN, "guest wifi password", k=10)
    acme_house = await _search(port, FLEET_TOKEN, "guest wifi password", collection="house")
    globex = await _search(port, GLOBEX_TOKEN, "guest wifi password", k=10)
    refused = []
    for token in (None, "not-a-token"):
        with pytest.raises(Exception) as caught:  # the SDK's wrapping varies
            async with _mcp_client(port, token) as client:
                await client.list_tools()
        refused.append(caught.value)

    assert tools == {"search_knowledge", "list_collections"}
    assert listed.structured_content is not None
    assert [c["name"] for c in listed.structured_content["result"]] == ["house", "notes"]
    assert bad_k.is_error
    assert missing.is_error
    assert [h["doc_id"] for h in acme] == ["wifi", "bins"]
    assert acme[0]["text"] == ACME_WIFI
    assert acme[0]["score"] > acme[1]["score"]
    assert [(h["collection"], h["doc_id"]) for h in acme_house] == [("house", "bins")]
    assert [h["text"] for h in globex] == [GLOBEX_WIFI]
    assert len(refused) == 2


async def test_the_mcp_inspector_searches_konak_knowledge_and_is_refused_without_a_token(
    broker: Mosquitto, tmp_path: Path, hubs: Hubs
) -> None:
    running, _ = await hub_with_notes(
        hubs, knowledge_hub(broker, tmp_path), ("acme", "wifi", ACME_WIFI)
    )
    port, preload = running.hub.fleet_mcp_port, tmp_path / "token.mjs"

    rc_list, listed = await inspector(
        port, preload, "--method", "tools/list", path="/knowledge/mcp"
    )
    rc_call, called = await inspector(
        port,
        preload,
        "--method",
        "tools/call",
        "--tool-name",
        "search_knowledge",
        "--tool-arg",
        "query=guest wifi password",
        path="/knowledge/mcp",
    )
    rc_denied, _ = await inspector(
        port, preload, "--method", "tools/list", token=None, path="/knowledge/mcp"
    )

    assert rc_list == 0
    assert {t["name"] for t in json.loads(listed)["tools"]} == {
        "search_knowledge",
        "list_collections",
    }
    assert rc_call == 0
    hits = json.loads(called)["structuredContent"]["result"]
    assert [h["doc_id"] for h in hits] == ["wifi"]
    assert rc_denied != 0

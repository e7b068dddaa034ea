"""The knowledge store with the real embedding model (all-MiniLM-L6-v2 through onnxruntime)
on both real backends, and the hub starting it from hub.toml's [knowledge]."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from konak.hub.app import create_app
from konak.hub.keys import KNOWLEDGE
from konak.hub.knowledge.service import KnowledgeService, load_embedder
from konak.hub.knowledge.settings import KnowledgeSettings
from konak.hub.knowledge.types import BackendUnavailable, DocumentIn
from konak.hub.quotas import TenantQuota
from konak.hub.settings import FleetMcpSettings, HubSettings, MqttSettings

pytestmark = pytest.mark.integration
MODELS = Path(os.environ["KONAK_MODELS_DIR"])
NOTES = [
    DocumentIn("wifi", "The guest wifi network is Konak-Guest and its password is tulip42."),
    DocumentIn("bin", "The recycling bin is collected every Tuesday morning."),
    DocumentIn("boiler", "If the boiler shows error E119, top up the pressure to 1.5 bar."),
    DocumentIn("cat", "The cat is fed twice a day, at 7am and 6pm."),
]


@pytest.fixture(params=["sqlite", "postgres"])
async def service(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KnowledgeService]:
    if request.param == "postgres":
        settings = KnowledgeSettings(
            backend="postgres",
            postgres_dsn=request.getfixturevalue("postgres_dsn"),
            models_dir=MODELS,
        )
    else:
        settings = KnowledgeSettings(directory=tmp_path, models_dir=MODELS)
    embedder = load_embedder(settings)
    assert embedder is not None, "run `make setup` (konak models pull all-minilm-l6-v2)"
    opened = await KnowledgeService.open(
        settings, quotas=lambda t: TenantQuota(), embedder=embedder
    )
    yield opened
    await opened.close()


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("what's the guest wifi password", "wifi"),
        ("when do they pick up the bins", "bin"),
        ("my heater says E119", "boiler"),
        ("what time does the kitty eat", "cat"),
    ],
)
async def test_a_question_finds_the_passage_that_answers_it(
    service: KnowledgeService, question: str, answer: str
) -> None:
    await service.create_collection("acme", "house")
    await service.upsert("acme", "house", NOTES)
    await service.create_collection("globex", "house")
    await service.upsert("globex", "house", [DocumentIn("wifi", "Globex wifi password: zebra7.")])

    hits = await service.search("acme", None, text=question, k=2)

    assert hits[0].doc_id == answer
    assert hits[0].score > 0.3
    assert all("zebra7" not in h.text for h in hits)


async def test_the_model_dimension_and_id_are_the_collections(service: KnowledgeService) -> None:
    info = await service.create_collection("acme", "house")
    vectors = await service.embed(["hello", "world"])

    assert (info.dim, info.model) == (384, "all-minilm-l6-v2")
    assert vectors.shape == (2, 384)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("installed", [True, False])
async def test_the_hub_starts_knowledge_with_or_without_the_model(
    tmp_path: Path, installed: bool
) -> None:
    settings = HubSettings(
        database_path=tmp_path / "hub.sqlite3",
        mqtt=MqttSettings(port=_closed_port(), reconnect_seconds=0.05),
        fleet_mcp=FleetMcpSettings(enabled=False),
        knowledge=KnowledgeSettings(models_dir=MODELS if installed else tmp_path / "none"),
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        service = app[KNOWLEDGE]
        await service.create_collection("acme", "house")
        await service.upsert("acme", "house", [DocumentIn("v", "given", vector=[1.0] * 384)])
        if installed:
            await service.upsert("acme", "house", NOTES)
            hits = await service.search("acme", ["house"], text="wifi password")
            assert hits[0].doc_id == "wifi"
        else:
            with pytest.raises(BackendUnavailable, match="not installed"):
                await service.search("acme", ["house"], text="wifi password")
        assert [h.doc_id for h in await service.search("acme", None, vector=[1.0] * 384, k=1)] == [
            "v"
        ]
    finally:
        await runner.cleanup()

    assert (tmp_path / "knowledge" / "acme.sqlite3").is_file()  # beside the hub database

"""A spoken question answered from the tenant's notes: the real daemon (wake word, VAD,
open-vocabulary STT, no intent matched), the real broker, the real hub with knowledge, and
the reply spoken by the daemon's TTS."""

# The daemon and hub tests' fixtures are imported below and named as parameters.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from konak.daemon.engines import Engines, load_engines
from konak.daemon.settings import parse
from konak.devtools.mosquitto import Mosquitto
from tests.integration.daemon.conftest import (  # noqa: F401 (fixtures)
    SLOT_LISTS,
    RunningDaemon,
    Wav,
    command,
    device_config,
    models_dir,
    run_daemon,
    speech,
    voice,
    wav,
)
from tests.integration.hub.conftest import hubs  # noqa: F401 (a fixture)

from .test_voice import ACME_WIFI, BINS, Hubs, hub_with_notes, knowledge_hub

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shared_engines(models_dir: Path) -> Engines:
    """The daemon's engines with open-vocabulary STT (what ``run_daemon`` runs): a question
    is transcribed as heard, not forced onto the command grammar."""
    raw = {
        "device": {"tenant": "acme", "device": "kitchen-pi"},
        "intent": {"slot_lists": SLOT_LISTS},
        "stt": {"mode": "open"},
    }
    return load_engines(parse(raw, base_dir=Path.cwd(), default_models_dir=models_dir))


async def test_a_spoken_question_no_intent_matches_is_answered_from_a_note_and_spoken(
    broker: Mosquitto, tmp_path: Path, hubs: Hubs, run_daemon: RunningDaemon, wav: Wav
) -> None:
    await hub_with_notes(
        hubs,
        knowledge_hub(broker, tmp_path / "hub"),
        ("acme", "wifi", ACME_WIFI),
        ("acme", "bins", BINS),
    )

    _daemon, log = run_daemon(
        source=wav(*command("what is the guest wifi password.")), stt={"mode": "open"}
    )

    # The hub runs on this event loop: wait for the daemon's events off it.
    said = await asyncio.to_thread(log.wait_for, lambda e: e.type == "tts-end", 120)
    intent = log.wait_for(lambda e: e.type == "intent-end", 0)
    hub = log.wait_for(lambda e: e.type == "hub-end", 0)
    assert intent.data["intent"] is None
    assert hub.data["outcome"] == "ok"
    assert said.data["text"] == (
        "The guest wifi network is Konak-Guest and its password is blue-otter-42."
    )

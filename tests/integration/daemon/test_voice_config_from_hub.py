"""A slot value an operator publishes from the hub's voice config is what the real daemon
recognises in its next turn: real hub, real broker, real models, spoken audio."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from konak.daemon.settings import parse
from konak.devtools.mosquitto import Mosquitto
from konak.hub.keys import AUTH, INGEST
from konak.hub.security.rbac import Role
from konak.protocol import Intent, Kind, subscription
from tests.conftest import ProbeFactory
from tests.daemon.fakes import FedSource
from tests.hub.api.conftest import PASSWORD, auth_settings
from tests.integration.hub.conftest import hub_settings
from tests.integration.hub.test_openapi_fuzz import HubThread

from .conftest import RunningDaemon, daemon_config

pytestmark = pytest.mark.integration

OPERATOR = "ops@acme.test"
WAIT_SECONDS = 60.0


@pytest.fixture
def hub(broker: Mosquitto, tmp_path: Path) -> Iterator[HubThread]:
    """A hub with the API on the test broker (static logins: it enrols no devices, so a
    config goes to the devices that reported)."""
    running = HubThread(
        hub_settings(broker, tmp_path, client_id="konak-hub-voice", auth=auth_settings())
    )
    users = running.app[AUTH].users
    users.assign("acme", users.create_user(OPERATOR, PASSWORD).user_id, Role.OPERATOR)
    running.start()
    yield running
    running.stop()


def test_a_published_slot_value_is_used_by_the_daemons_next_recognition(
    broker: Mosquitto,
    hub: HubThread,
    mqtt_probe: ProbeFactory,
    run_daemon: RunningDaemon,
    speech,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    models_dir: Path,
) -> None:
    url = f"http://127.0.0.1:{hub.port}"
    watcher = mqtt_probe()
    watcher.subscribe(subscription(Kind.INTENT))
    mic = FedSource()
    raw = daemon_config(broker, tmp_path, models_dir)
    daemon, log = run_daemon(parse(raw, base_dir=tmp_path, default_models_dir=models_dir), mic)
    # The hub has heard the daemon's status (its first message) before anything is published.
    asyncio.run_coroutine_threadsafe(
        hub.app[INGEST].wait_dispatched(1, WAIT_SECONDS), hub.loop
    ).result(timeout=WAIT_SECONDS)
    login = requests.post(
        f"{url}/api/auth/login", json={"email": OPERATOR, "password": PASSWORD}, timeout=10
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    config = {
        "base_revision": 0,
        "language": "en",
        "sentences": {},
        "slot_lists": {"name": ["porch light", "kitchen light"], "area": ["kitchen"]},
        "wake_words": [],
    }

    before = daemon.engines.intents.recognize("turn on the porch light")
    assert before is None or before.slots.get("name") != "porch light"  # not a name yet

    saved = requests.put(
        f"{url}/api/tenants/acme/voice-config", json=config, headers=headers, timeout=30
    )
    published = requests.post(
        f"{url}/api/tenants/acme/voice-config/publish", json={}, headers=headers, timeout=30
    )

    assert saved.status_code == 200, saved.text
    assert published.json() == {"revision": 1, "devices": ["kitchen-pi"]}
    applied = log.wait_for(lambda e: e.type == "config-applied")
    assert applied.data == {"revision": 1}
    mic.feed(speech(1.0, "Hey Jarvis,", 0.3, "turn on the porch light.", 1.5))
    intent = Intent.from_payload(watcher.next(timeout=WAIT_SECONDS).payload)
    assert (intent.intent, intent.slots) == ("HassTurnOn", {"name": "porch light"})

"""The console's fleet views and live events, from a real store and the fleet monitor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from konak.hub.alerts import AlertLog
from konak.hub.database import connect
from konak.hub.events import EventBroker
from konak.hub.fleet import FleetMonitor, NoTargets, announcements
from konak.hub.live import LiveFleet
from konak.hub.metrics import HubMetrics
from konak.hub.security.rbac import ROLE_ACTIONS, Role
from konak.hub.settings import FleetSettings
from konak.hub.store import Store
from konak.protocol import Intent, Status, Telemetry

MEMBER = ROLE_ACTIONS[Role.MEMBER]
READONLY = ROLE_ACTIONS[Role.READONLY]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "hub.sqlite3")
    yield s
    s.close()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AlertLog]:
    db = connect(tmp_path / "hub.sqlite3")
    yield AlertLog(db)
    db.close()


def enrolled(tenant: str) -> list[dict[str, Any]]:
    rows = {
        "acme": [
            {"device": "hall-pi", "name": "Hall", "area": "hall", "revoked": False},
            {"device": "old-pi", "name": "Old", "area": None, "revoked": True},
            {"device": "kitchen-pi", "name": "Kitchen", "area": "kitchen", "revoked": False},
        ]
    }
    return rows.get(tenant, [])


def test_the_fleet_is_the_union_of_seen_and_enrolled_devices(store: Store) -> None:
    live = LiveFleet(store, EventBroker(), enrolled)
    store.upsert_status(Status(tenant="acme", device="kitchen-pi", state="online"), 1.0)
    store.upsert_status(Status(tenant="acme", device="stray-pi", state="online"), 1.0)
    store.upsert_status(Status(tenant="globex", device="theirs", state="online"), 1.0)
    store.add_telemetry(
        Telemetry(tenant="acme", device="kitchen-pi", uptime_seconds=1, cpu_percent=5, rss_bytes=9),
        2.0,
        retention_seconds=1e9,
        max_rows=10,
    )

    fleet = {v["device"]: v for v in live.fleet("acme")}

    assert {d: (v["state"], v["enrolled"]) for d, v in fleet.items()} == {
        "hall-pi": ("never_seen", True),
        "kitchen-pi": ("online", True),
        "stray-pi": ("online", False),
    }
    assert fleet["kitchen-pi"]["telemetry"] == {
        "cpu_percent": 5,
        "rss_bytes": 9,
        "temperature_celsius": None,
        "received_at": 2.0,
    }
    assert fleet["hall-pi"]["name"] == "Hall"
    # A daemon whose status names no name or area is shown as it was enrolled.
    assert (fleet["kitchen-pi"]["name"], fleet["kitchen-pi"]["area"]) == ("Kitchen", "kitchen")
    assert (fleet["stray-pi"]["name"], fleet["stray-pi"]["area"]) == (None, None)
    assert live.device("acme", "old-pi") is None
    assert live.device("acme", "theirs") is None


async def test_a_status_change_and_a_finished_turn_are_published_filtered_by_role(
    store: Store,
) -> None:
    broker = EventBroker()
    live = LiveFleet(store, broker, None)
    fleet = FleetMonitor(store, FleetSettings(), HubMetrics(), live=live)
    member, readonly = broker.subscribe("acme", MEMBER), broker.subscribe("acme", READONLY)
    intent = Intent(
        tenant="acme",
        device="pi",
        turn_id="t-00000001",
        text="lights on",
        intent="HassTurnOn",
        speech_ended_at=9.5,
    )

    fleet.on_status(Status(tenant="acme", device="pi", state="online"), 1.0)
    fleet.on_status(Status(tenant="acme", device="pi", state="online"), 2.0)  # no change
    fleet.on_status(Status(tenant="acme", device="pi", state="online", config_revision=3), 3.0)
    store.claim_turn("acme", intent.turn_id, "pi", intent)
    store.finish_turn("acme", intent.turn_id, "ok", "Done.")
    store.replied("acme", intent.turn_id, 10.0)
    live.turn_finished("acme", intent.turn_id)
    broker.close()

    got = [e async for e in _drain(member)]
    assert [(e.name, e.data.get("config_revision")) for e in got] == [
        ("device", None),
        ("device", 3),
        ("turn", None),
    ]
    assert got[2].data["latency_ms"] == pytest.approx(500.0)
    assert (got[2].data["text"], got[2].data["intent"]) == ("lights on", "HassTurnOn")
    seen_by_readonly = [e async for e in _drain(readonly)]
    assert [e.name for e in seen_by_readonly] == ["device", "device"]
    assert all("last_turn" not in e.data for e in seen_by_readonly)


async def _drain(sub: Any) -> Any:
    while (event := await sub.get(1)) is not None:
        yield event


async def test_an_offline_alert_is_kept_and_published_once(store: Store, log: AlertLog) -> None:
    broker = EventBroker()
    sub = broker.subscribe("acme", READONLY)
    fleet = FleetMonitor(
        store,
        FleetSettings(offline_alert_seconds=60),
        HubMetrics(),
        alerts=log,
        live=LiveFleet(store, broker, None),
    )
    fleet.on_status(Status(tenant="acme", device="pi", state="offline"), 0.0)

    assert fleet.sweep(100.0)
    assert not fleet.sweep(200.0)
    assert fleet.tenant_alert("acme", "quota_reached", "intents_per_minute", "reached", 100.0)
    broker.close()

    kinds = [e.data["kind"] async for e in _drain(sub) if e.name == "alert"]
    assert kinds == ["device_offline", "quota_reached"]
    assert [(a.kind, a.device_id) for a, _ in log.page("acme", "u-1")] == [
        ("quota_reached", None),
        ("device_offline", "pi"),
    ]


def test_an_announcement_names_a_seen_device_or_every_device_of_an_area(store: Store) -> None:
    for device in ("a", "b"):
        store.upsert_status(Status(tenant="acme", device=device, state="online", area="hall"), 1.0)

    assert [c.device for c in announcements(store, "acme", "Hi", None, "hall")] == ["a", "b"]
    assert announcements(store, "acme", "Hi", "a", None)[0].text == "Hi"
    with pytest.raises(NoTargets):
        announcements(store, "globex", "Hi", "a", None)

"""The store (a real SQLite file) and the fleet monitor's alerts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from konak.hub.database import StoreError
from konak.hub.fleet import FleetMonitor
from konak.hub.metrics import HubMetrics
from konak.hub.settings import FleetSettings
from konak.hub.store import Store
from konak.protocol import Status, Telemetry


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "hub.sqlite3")
    yield s
    s.close()


def _status(tenant: str, device: str, state: str, **kw: object) -> Status:
    return Status(tenant=tenant, device=device, state=state, **kw)  # type: ignore[arg-type]


def test_devices_are_scoped_by_tenant(store: Store) -> None:
    store.upsert_status(_status("acme", "pi", "online", area="kitchen"), 1.0)
    store.upsert_status(_status("other", "pi", "offline"), 1.0)

    assert [(d.tenant_id, d.state) for d in store.devices("acme")] == [("acme", "online")]
    assert store.device("other", "pi").state == "offline"  # type: ignore[union-attr]
    assert store.devices("acme", area="kitchen")[0].device_id == "pi"
    assert store.devices("nobody") == []


def test_a_last_will_keeps_the_identity_the_device_reported_before(store: Store) -> None:
    store.upsert_status(_status("acme", "pi", "online", area="kitchen", models=["m"]), 1.0)

    _, after = store.upsert_status(_status("acme", "pi", "offline"), 2.0)

    assert (after.state, after.area, after.models, after.state_since) == (
        "offline",
        "kitchen",
        ["m"],
        2.0,
    )


def test_a_turn_is_claimed_once_per_tenant(store: Store) -> None:
    assert store.claim_turn("acme", "t-1234567890", "pi") is None
    store.finish_turn("acme", "t-1234567890", "ok", "Done.")
    store.replied("acme", "t-1234567890")

    again = store.claim_turn("acme", "t-1234567890", "pi")

    assert again is not None
    assert (again.state, again.reply_text) == ("done", "Done.")
    assert store.claim_turn("other", "t-1234567890", "pi") is None


def test_claimed_turns_survive_reopening_the_database(tmp_path: Path) -> None:
    first = Store(tmp_path / "hub.sqlite3")
    first.claim_turn("acme", "t-1234567890", "pi")
    first.close()
    second = Store(tmp_path / "hub.sqlite3")

    assert second.claim_turn("acme", "t-1234567890", "pi") is not None
    second.close()


def test_telemetry_history_is_bounded_by_rows_and_age(store: Store) -> None:
    for n in range(10):
        sample = Telemetry(tenant="acme", device="pi", uptime_seconds=n, cpu_percent=1, rss_bytes=1)
        store.add_telemetry(sample, 1000.0 + n, retention_seconds=5, max_rows=3)

    history = store.telemetry("acme", "pi")

    assert [h["uptime_seconds"] for h in history] == [9.0, 8.0, 7.0]
    assert store.telemetry("other", "pi") == []


def test_an_unwritable_database_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")

    with pytest.raises(StoreError, match="cannot open the hub database"):
        Store(tmp_path / "file" / "hub.sqlite3")


def test_an_offline_device_alerts_once_after_the_threshold(store: Store) -> None:
    metrics = HubMetrics()
    monitor = FleetMonitor(store, FleetSettings(offline_alert_seconds=60), metrics)
    monitor.on_status(_status("acme", "pi", "online"), now=0.0)
    monitor.on_status(_status("acme", "pi", "offline"), now=10.0)

    early = monitor.sweep(now=69.0)
    due = monitor.sweep(now=70.0)
    later = monitor.sweep(now=500.0)

    assert (early, [d.device_id for d in due], later) == ([], ["pi"], [])
    assert metrics.value("konak_hub_alerts_total", {"kind": "device_offline"}) == 1
    assert metrics.value("konak_hub_devices_online", {"tenant": "acme"}) == 0


def test_a_device_that_returns_and_vanishes_again_alerts_again(store: Store) -> None:
    settings = FleetSettings(offline_alert_seconds=60, alert_repeat_seconds=0)
    monitor = FleetMonitor(store, settings, HubMetrics())
    monitor.on_status(_status("acme", "pi", "offline"), now=0.0)
    monitor.sweep(now=100.0)
    monitor.on_status(_status("acme", "pi", "online"), now=110.0)
    monitor.on_status(_status("acme", "pi", "offline"), now=120.0)

    assert [d.device_id for d in monitor.sweep(now=200.0)] == ["pi"]


def test_a_flapping_device_raises_one_alert_per_repeat_window(store: Store) -> None:
    metrics = HubMetrics()
    monitor = FleetMonitor(store, FleetSettings(alert_repeat_seconds=300), metrics)
    for n in range(200):  # a new error code each time: each was an alert of its own
        monitor.on_status(_status("acme", "pi", "error", error=f"e{n}"), now=float(n))
    assert metrics.value("konak_hub_alerts_total", {"kind": "device_error"}) == 1
    monitor.on_status(_status("acme", "pi", "error", error="late"), now=500.0)
    assert metrics.value("konak_hub_alerts_total", {"kind": "device_error"}) == 2
    assert monitor.suppressed == 199


def test_a_tenant_raises_at_most_its_alerts_per_minute_and_others_are_not_held_back(
    store: Store,
) -> None:
    metrics = HubMetrics()
    monitor = FleetMonitor(store, FleetSettings(alerts_per_minute=3), metrics)
    for n in range(10):
        monitor.on_status(_status("acme", f"pi-{n}", "error", error="x"), now=1.0)
    monitor.on_status(_status("globex", "pi", "error", error="x"), now=1.0)
    assert metrics.value("konak_hub_alerts_total", {"kind": "device_error"}) == 4
    monitor.on_status(_status("acme", "pi-late", "error", error="x"), now=61.0)
    assert metrics.value("konak_hub_alerts_total", {"kind": "device_error"}) == 5


def test_an_offline_alert_held_back_by_the_tenant_rate_is_sent_at_a_later_sweep(
    store: Store,
) -> None:
    settings = FleetSettings(offline_alert_seconds=60, alerts_per_minute=1)
    monitor = FleetMonitor(store, settings, HubMetrics())
    for device in ("a", "b"):
        monitor.on_status(_status("acme", device, "offline"), now=0.0)
    first = [d.device_id for d in monitor.sweep(now=100.0)]
    second = [d.device_id for d in monitor.sweep(now=170.0)]
    assert len(first) == 1
    assert sorted(first + second) == ["a", "b"]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (
            "<!channel> <https://evil.example|click>",
            "&lt;!channel&gt; &lt;https://evil.example|click&gt;",
        ),
        ("Tom & Jerry", "Tom &amp; Jerry"),
        ("&lt;", "&amp;lt;"),
    ],
)
def test_names_are_escaped_for_slack(raw: str, shown: str) -> None:
    from konak.hub.fleet import slack_escape

    assert slack_escape(raw) == shown

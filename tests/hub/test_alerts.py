"""The alert log: kept per tenant, read state per user, bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from konak.hub import alerts as alerts_module
from konak.hub.alerts import AlertLog
from konak.hub.database import connect


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AlertLog]:
    db = connect(tmp_path / "hub.sqlite3")
    yield AlertLog(db)
    db.close()


def test_read_state_is_per_user_and_read_all_leaves_later_alerts_unread(log: AlertLog) -> None:
    first = log.add("acme", "device_offline", "pi", "offline for 5.0 min", 1.0)
    second = log.add("acme", "device_error", "pi", "reported error mic", 2.0)

    assert log.mark_read("acme", "u-ann", first.id)
    assert [(a.id, read) for a, read in log.page("acme", "u-ann")] == [
        (second.id, False),
        (first.id, True),
    ]
    assert log.unread("acme", "u-bob") == 2
    log.mark_all_read("acme", "u-bob")
    third = log.add("acme", "quota_reached", None, "quota intents_per_minute reached", 3.0)

    assert log.unread("acme", "u-bob") == 1
    assert [a.id for a, _ in log.page("acme", "u-bob", unread_only=True)] == [third.id]
    assert [a.id for a, _ in log.page("acme", "u-ann", before_id=second.id)] == [first.id]
    assert third.as_dict(read=False)["device"] is None


def test_another_tenants_alert_cannot_be_seen_or_marked(log: AlertLog) -> None:
    theirs = log.add("globex", "device_offline", "pi", "offline", 1.0)
    log.add("acme", "device_offline", "pi", "offline", 1.0)

    assert not log.mark_read("acme", "u-ann", theirs.id)
    assert [a.tenant_id for a, _ in log.page("acme", "u-ann")] == ["acme"]
    log.mark_all_read("acme", "u-ann")
    assert log.unread("globex", "u-ann") == 1


def test_a_tenant_keeps_only_its_newest_alerts(
    log: AlertLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alerts_module, "MAX_ALERTS_PER_TENANT", 3)
    made = [log.add("acme", "device_offline", f"pi{n}", "offline", float(n)) for n in range(5)]
    log.add("globex", "device_offline", "pi", "offline", 1.0)

    assert [a.id for a, _ in log.page("acme", "u-ann")] == [a.id for a in made[:1:-1]]
    assert log.unread("globex", "u-ann") == 1

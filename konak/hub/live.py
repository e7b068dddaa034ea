"""The console's views of a tenant's fleet, and their live events.

The fleet is the union of the devices that reported a status (the store) and the devices
enrolled through the API (the claims), so a device online but never enrolled and one
enrolled but never seen both appear. The same views go to the event broker when a device
changes, a turn finishes or an alert is raised; a device's ``last_turn`` and the ``turn``
events are transcripts, seen only by roles that hold turns.read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from konak.hub.alerts import Alert
from konak.hub.events import Event, EventBroker
from konak.hub.security.rbac import Action
from konak.hub.store import Device, Store, TurnRecord

logger = logging.getLogger(__name__)

# (tenant) -> its enrolled devices as ``Claims.devices`` lists them; None: no enrolment.
Enrolled = Callable[[str], list[dict[str, Any]]]
NEVER_SEEN: Final = "never_seen"
TRANSCRIPTS: Final = {"last_turn": Action.TURNS_READ}
# What a DeviceView shows of a device that reported a status.
SEEN_FIELDS: Final = (
    "device",
    "name",
    "area",
    "state",
    "error",
    "last_seen",
    "state_since",
    "versions",
    "models",
    "config_revision",
)


def _telemetry(sample: dict[str, Any] | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    keys = ("cpu_percent", "rss_bytes", "temperature_celsius", "received_at")
    return {k: sample.get(k) for k in keys}


class LiveFleet:
    """Builds DeviceViews and TurnViews, and publishes them as events."""

    def __init__(self, store: Store, broker: EventBroker, enrolled: Enrolled | None) -> None:
        self.store = store
        self.broker = broker
        self.enrolled = enrolled

    def _enrolment(self, tenant: str) -> dict[str, dict[str, Any]]:
        if self.enrolled is None:
            return {}
        return {d["device"]: d for d in self.enrolled(tenant)}

    def _view(
        self,
        tenant: str,
        device: Device | None,
        enrolment: dict[str, Any] | None,
        last_turn: TurnRecord | None,
    ) -> dict[str, Any]:
        if device is None:
            assert enrolment is not None
            shown: dict[str, Any] = {
                "device": enrolment["device"],
                "name": enrolment["name"],
                "area": enrolment["area"],
                "state": NEVER_SEEN,
                "error": None,
                "last_seen": None,
                "state_since": None,
                "versions": {},
                "models": [],
                "config_revision": None,
                "telemetry": None,
            }
        else:
            samples = self.store.telemetry(tenant, device.device_id, limit=1)
            seen = device.as_dict()
            shown = {k: seen[k] for k in SEEN_FIELDS}
            shown["telemetry"] = _telemetry(samples[0] if samples else None)
            if enrolment is not None:  # a daemon that names no name or area: its enrolment's
                for key in ("name", "area"):
                    shown[key] = shown[key] or enrolment[key]
        return {
            **shown,
            "enrolled": enrolment is not None and not enrolment["revoked"],
            "last_turn": last_turn.as_dict() if last_turn else None,
        }

    def fleet(self, tenant: str) -> list[dict[str, Any]]:
        """Every device of the tenant, seen or enrolled (revoked ones only once seen), by id."""
        seen = {d.device_id: d for d in self.store.devices(tenant)}
        enrolment = self._enrolment(tenant)
        last_turns = self.store.last_turns(tenant)
        ids = set(seen) | {d for d, e in enrolment.items() if not e["revoked"]}
        return [
            self._view(tenant, seen.get(d), enrolment.get(d), last_turns.get(d))
            for d in sorted(ids)
        ]

    def device(self, tenant: str, device_id: str) -> dict[str, Any] | None:
        """One device's view, or None when it was never seen and is not enrolled."""
        seen = self.store.device(tenant, device_id)
        enrolment = self._enrolment(tenant).get(device_id)
        if seen is None and (enrolment is None or enrolment["revoked"]):
            return None
        turns = self.store.turns(tenant, device_id=device_id, limit=1)
        return self._view(tenant, seen, enrolment, turns[0] if turns else None)

    # -- events ------------------------------------------------------------------------
    def device_changed(self, device: Device) -> None:
        """Publish a ``device`` event (status changed, first seen, config applied)."""
        self.device_listed(device.tenant_id, device.device_id)

    def device_listed(self, tenant: str, device_id: str) -> None:
        """Publish a ``device`` event for a device as the fleet now lists it (also one just
        enrolled or revoked, which has said nothing yet)."""
        if not self.broker.subscribers(tenant):
            return  # nobody to build the view for
        view = self.device(tenant, device_id)
        if view is not None:
            self.broker.publish(tenant, Event("device", view, redact=TRANSCRIPTS))

    def turn_finished(self, tenant: str, turn_id: str) -> None:
        """Publish a ``turn`` event (only to roles that may read transcripts)."""
        if not self.broker.subscribers(tenant):
            return
        turn = self.store.turn(tenant, turn_id)
        if turn is not None:
            self.broker.publish(tenant, Event("turn", turn.as_dict(), Action.TURNS_READ))

    def alert_raised(self, alert: Alert) -> None:
        """Publish an ``alert`` event (unread for everyone)."""
        self.broker.publish(alert.tenant_id, Event("alert", alert.as_dict(), Action.ALERTS_READ))

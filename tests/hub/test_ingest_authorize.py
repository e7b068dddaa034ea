"""MQTT ingest authorises every message with the device's identity (deny by default)."""

from __future__ import annotations

from typing import Any

import pytest

from konak.hub import ingest as ingest_module
from konak.hub.ingest import INGEST_KINDS, KIND_ACTIONS, Ingest
from konak.hub.metrics import HubMetrics
from konak.hub.security.errors import Forbidden, NotFound, Unauthenticated
from konak.hub.security.rbac import DEVICE_ACTIONS, Action, Identity, Resource, Role, authorize
from konak.hub.settings import MqttSettings
from konak.protocol import Status, Telemetry

STATUS = b'{"v": 1, "type": "status", "tenant": "acme", "device": "pi", "state": "online"}'


def make_ingest(
    metrics: HubMetrics, statuses: list[Status], settings: MqttSettings | None = None, **kw: Any
) -> Ingest:
    async def on_intent(intent: object, claimed: object) -> None:
        raise AssertionError("no intent expected")

    telemetry: list[Telemetry] = []
    return Ingest(
        settings or MqttSettings(),
        metrics,
        on_status=statuses.append,
        on_telemetry=telemetry.append,
        on_intent=on_intent,
        **kw,
    )


def status(tenant: str, device: str) -> tuple[str, bytes]:
    msg = Status(tenant=tenant, device=device, state="online")
    return msg.topic, msg.to_payload()


def test_every_kind_a_device_publishes_has_exactly_one_action() -> None:
    assert set(KIND_ACTIONS) == set(INGEST_KINDS)
    assert set(KIND_ACTIONS.values()) == DEVICE_ACTIONS


@pytest.mark.parametrize("action", sorted(DEVICE_ACTIONS))
def test_a_device_may_send_each_kind_for_its_own_tenant_only(action: Action) -> None:
    device = Identity.device("acme", "pi")
    authorize(device, action, Resource("acme", "x", "pi"))
    with pytest.raises(Forbidden):
        authorize(device, action, Resource("globex", "x", "pi"))


@pytest.mark.parametrize(
    "action", [Action.DEVICES_CLAIM, Action.USERS_READ, Action.AUDIT_READ, Action.TENANTS_CREATE]
)
def test_a_device_may_take_no_user_action(action: Action) -> None:
    with pytest.raises(Forbidden):
        authorize(Identity.device("acme", "pi"), action, Resource("acme"))


@pytest.mark.parametrize("action", sorted(DEVICE_ACTIONS))
def test_users_of_any_role_may_not_act_as_a_device(action: Action) -> None:
    for role in Role:
        with pytest.raises(Forbidden):
            authorize(Identity("u", roles={"acme": role}), action, Resource("acme"))
    with pytest.raises(NotFound):
        authorize(Identity("u", roles={"globex": Role.ADMIN}), action, Resource("acme"))
    with pytest.raises(Unauthenticated):
        authorize(None, action, Resource("acme"))


async def test_a_message_whose_kind_has_no_action_is_dropped_as_forbidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics, statuses = HubMetrics(), list[Status]()
    ingest = make_ingest(metrics, statuses)
    monkeypatch.setattr(
        ingest_module,
        "KIND_ACTIONS",
        {k: a for k, a in KIND_ACTIONS.items() if a is not Action.STATUS_SEND},
    )
    ingest.dispatch("konak/v1/acme/pi/status", STATUS)
    assert statuses == []
    assert metrics.value("konak_hub_messages_dropped_total", {"reason": "forbidden"}) == 1.0


async def test_an_authorised_status_is_handed_on() -> None:
    metrics, statuses = HubMetrics(), list[Status]()
    make_ingest(metrics, statuses).dispatch("konak/v1/acme/pi/status", STATUS)
    assert [s.device for s in statuses] == ["pi"]
    assert metrics.value("konak_hub_messages_dropped_total", {"reason": "forbidden"}) == 0.0


def test_only_enrolled_unrevoked_devices_are_heard() -> None:
    metrics, statuses = HubMetrics(), list[Status]()
    enrolled = {("acme", "pi")}
    ingest = make_ingest(metrics, statuses, enrolled=lambda t, d: (t, d) in enrolled)
    ingest.dispatch(*status("acme", "pi"))
    ingest.dispatch(*status("acme", "ghost"))
    enrolled.clear()  # revoked
    ingest.dispatch(*status("acme", "pi"))
    assert [s.device for s in statuses] == ["pi"]
    assert metrics.value("konak_hub_messages_dropped_total", {"reason": "not_enrolled"}) == 2.0


def test_a_device_over_its_message_rate_is_dropped_and_counted_and_others_are_not() -> None:
    now = [0.0]
    metrics, statuses = HubMetrics(), list[Status]()
    settings = MqttSettings(device_message_burst=5, device_messages_per_second=1.0)
    ingest = make_ingest(metrics, statuses, settings, clock=lambda: now[0])
    for _ in range(50):
        ingest.dispatch(*status("acme", "noisy"))
    ingest.dispatch(*status("globex", "calm"))
    now[0] = 2.0  # two tokens back
    for _ in range(3):
        ingest.dispatch(*status("acme", "noisy"))
    assert [s.device for s in statuses].count("noisy") == 7
    assert [s.device for s in statuses].count("calm") == 1
    assert metrics.value("konak_hub_messages_dropped_total", {"reason": "rate_limited"}) == 46.0

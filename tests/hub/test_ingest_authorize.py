"""MQTT ingest authorises every message with the device's identity (deny by default)."""

from __future__ import annotations

import pytest

from konak.hub import ingest as ingest_module
from konak.hub.auth.errors import Forbidden, NotFound, Unauthenticated
from konak.hub.auth.rbac import DEVICE_ACTIONS, Action, Identity, Resource, Role, authorize
from konak.hub.ingest import INGEST_KINDS, KIND_ACTIONS, Ingest
from konak.hub.metrics import HubMetrics
from konak.hub.settings import MqttSettings
from konak.protocol import Status, Telemetry

STATUS = b'{"v": 1, "type": "status", "tenant": "acme", "device": "pi", "state": "online"}'


def make_ingest(metrics: HubMetrics, statuses: list[Status]) -> Ingest:
    async def on_intent(intent: object) -> None:
        raise AssertionError("no intent expected")

    telemetry: list[Telemetry] = []
    return Ingest(
        MqttSettings(),
        metrics,
        on_status=statuses.append,
        on_telemetry=telemetry.append,
        on_intent=on_intent,
    )


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
    metrics, statuses = HubMetrics(), []
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
    metrics, statuses = HubMetrics(), []
    make_ingest(metrics, statuses).dispatch("konak/v1/acme/pi/status", STATUS)
    assert [s.device for s in statuses] == ["pi"]
    assert metrics.value("konak_hub_messages_dropped_total", {"reason": "forbidden"}) == 0.0

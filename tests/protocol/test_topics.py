from __future__ import annotations

import pytest

from konak.protocol import Kind, ProtocolError, build_topic, device_acl, parse_topic, subscription


def test_a_topic_is_built_from_tenant_device_and_kind() -> None:
    assert build_topic("acme", "kitchen-pi", Kind.INTENT) == "konak/v1/acme/kitchen-pi/intent"


def test_a_built_topic_parses_back_to_its_parts() -> None:
    for kind in Kind:
        parsed = parse_topic(build_topic("t1", "d_2", kind))
        assert (parsed.tenant, parsed.device, parsed.kind) == ("t1", "d_2", kind)


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "konak/v1/acme/kitchen",
        "konak/v2/acme/kitchen/intent",
        "other/v1/acme/kitchen/intent",
        "konak/v1/acme/kitchen/intent/extra",
        "konak/v1/acme/kitchen/telepathy",
        "konak/v1/+/kitchen/intent",
        "konak/v1/acme/#/intent",
        "konak/v1/ACME/kitchen/intent",
        "konak/v1//kitchen/intent",
        "konak/v1/acme/" + "d" * 64 + "/intent",
    ],
)
def test_a_malformed_topic_raises_bad_topic(topic: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_topic(topic)
    assert info.value.code == "bad_topic"


@pytest.mark.parametrize("tenant", ["", "a/b", "+", "#", "Tenant", "-lead"])
def test_building_a_topic_refuses_ids_that_would_break_it(tenant: str) -> None:
    with pytest.raises(ProtocolError) as info:
        build_topic(tenant, "dev", Kind.STATUS)
    assert info.value.code == "bad_topic"


def test_subscriptions_use_single_level_wildcards_by_default() -> None:
    assert subscription(Kind.INTENT) == "konak/v1/+/+/intent"
    assert subscription(tenant="acme") == "konak/v1/acme/+/+"


def test_a_device_acl_writes_its_uplinks_and_reads_its_downlinks_only() -> None:
    acl = dict((topic, access) for access, topic in device_acl("acme", "pi1"))
    assert acl == {
        "konak/v1/acme/pi1/status": "write",
        "konak/v1/acme/pi1/telemetry": "write",
        "konak/v1/acme/pi1/wake": "write",
        "konak/v1/acme/pi1/intent": "write",
        "konak/v1/acme/pi1/reply": "read",
        "konak/v1/acme/pi1/config": "read",
        "konak/v1/acme/pi1/cmd": "read",
    }

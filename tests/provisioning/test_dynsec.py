from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing

import pytest

from konak.devtools.mosquitto import BrokerError, Credentials, Mosquitto
from konak.devtools.probe import MqttProbe, ProbeError
from konak.protocol import Intent, Kind, Reply, decode, subscription
from konak.provisioning.dynsec import (
    DeviceLogin,
    DynsecAdmin,
    DynsecError,
    device_acls,
    device_client_id,
    device_username,
)


def test_a_device_username_joins_tenant_and_device() -> None:
    assert device_username("acme", "kitchen-pi") == "acme.kitchen-pi"


def test_a_device_client_id_is_unique_where_a_dashed_join_would_collide() -> None:
    assert device_client_id("a", "b-c") != device_client_id("a-b", "c")


@pytest.mark.parametrize(
    ("tenant", "device"), [("acme", "a.b"), ("a/b", "d"), ("", "d"), ("#", "d")]
)
def test_ids_that_could_be_ambiguous_or_break_topics_are_refused(tenant: str, device: str) -> None:
    with pytest.raises(DynsecError) as info:
        device_username(tenant, device)
    assert info.value.code == "bad_id"


def test_a_device_role_allows_only_its_own_topics() -> None:
    topics = {acl["topic"] for acl in device_acls("acme", "pi")}
    assert topics == {f"konak/v1/acme/pi/{kind.value}" for kind in Kind}
    assert all(acl["allow"] for acl in device_acls("acme", "pi"))


@pytest.fixture
def admin(dynsec_broker: Mosquitto) -> Iterator[DynsecAdmin]:
    creds = dynsec_broker.admin
    with DynsecAdmin(dynsec_broker.host, dynsec_broker.port, creds.username, creds.password) as a:
        yield a


def connect(broker: Mosquitto, login: DeviceLogin | Credentials) -> MqttProbe:
    if isinstance(login, Credentials):
        return MqttProbe(broker.host, broker.port, login).connect()
    creds = Credentials(login.username, login.password)
    return MqttProbe(broker.host, broker.port, creds, login.client_id).connect()


@pytest.mark.integration
def test_a_provisioned_device_talks_on_its_own_topics_only(
    dynsec_broker: Mosquitto, admin: DynsecAdmin
) -> None:
    login = admin.create_device("acme", "kitchen")
    admin.create_device("acme", "hall")
    with (
        closing(connect(dynsec_broker, dynsec_broker.admin)) as hub,
        closing(connect(dynsec_broker, login)) as dev,
    ):
        hub.subscribe(subscription(Kind.INTENT, tenant="+"))
        granted = dev.subscribe(subscription(Kind.REPLY, tenant="acme", device="hall"))
        assert [code.is_failure for code in granted] == [True], "may not read another's replies"
        assert not dev.subscribe(subscription(Kind.REPLY, tenant="acme", device="kitchen"))[
            0
        ].is_failure
        for tenant, device in (("acme", "hall"), ("other", "kitchen")):
            forged = Intent(tenant=tenant, device=device, turn_id="turn-forged-01", text="x")
            dev.publish(forged.topic, forged.to_payload())
        own = Intent(tenant="acme", device="kitchen", turn_id="turn-own-0001", text="hi")
        dev.publish(own.topic, own.to_payload())

        got = hub.next()
        assert decode(got.topic, got.payload) == own
        assert hub.messages.empty(), "forged intents were dropped by the broker"

        reply = Reply(tenant="acme", device="kitchen", turn_id="turn-own-0001", text="Hello.")
        hub.publish(reply.topic, reply.to_payload())
        got = dev.next()
        assert decode(got.topic, got.payload) == reply


@pytest.mark.integration
def test_revoking_a_device_disconnects_it_and_its_login_stops_working(
    dynsec_broker: Mosquitto, admin: DynsecAdmin
) -> None:
    login = admin.create_device("acme", "kitchen")
    dev = connect(dynsec_broker, login)
    disconnected = threading.Event()
    dev.client.on_disconnect = lambda *args: disconnected.set()

    admin.revoke_device("acme", "kitchen")

    assert disconnected.wait(5), "the broker dropped the revoked device's connection"
    dev.close()
    with pytest.raises(ProbeError, match="refused"):
        connect(dynsec_broker, login)
    assert "acme.kitchen" not in admin.list_clients()


@pytest.mark.integration
def test_re_enrolling_issues_a_new_password_and_the_old_one_fails(
    dynsec_broker: Mosquitto, admin: DynsecAdmin
) -> None:
    old = admin.create_device("acme", "kitchen")
    new = admin.create_device("acme", "kitchen")
    assert new.password != old.password
    with pytest.raises(ProbeError, match="refused"):
        connect(dynsec_broker, old)
    connect(dynsec_broker, new).close()


@pytest.mark.integration
def test_a_wrong_admin_password_is_refused_with_a_clear_error(dynsec_broker: Mosquitto) -> None:
    with pytest.raises(DynsecError, match="refused"):
        DynsecAdmin(dynsec_broker.host, dynsec_broker.port, "konak-admin", "wrong").connect()


@pytest.mark.integration
def test_an_unreachable_broker_is_a_clear_error() -> None:
    from konak.devtools.mosquitto import free_port

    with pytest.raises(DynsecError) as info:
        DynsecAdmin("127.0.0.1", free_port(), "konak-admin", "x").connect()
    assert info.value.code == "unreachable"


@pytest.mark.integration
def test_a_dynsec_broker_refuses_file_based_users(dynsec_broker: Mosquitto) -> None:
    with pytest.raises(BrokerError, match="dynsec"):
        dynsec_broker.add_user("someone")


@pytest.mark.integration
def test_the_identities_survive_a_broker_restart(
    dynsec_broker: Mosquitto, admin: DynsecAdmin
) -> None:
    login = admin.create_device("acme", "kitchen")
    admin.close()
    dynsec_broker.restart()
    connect(dynsec_broker, login).close()

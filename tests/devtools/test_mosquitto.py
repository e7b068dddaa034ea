from __future__ import annotations

import os
import socket

import pytest

from konak.devtools.mosquitto import AclRule, BrokerError, Mosquitto
from konak.devtools.probe import MqttProbe, ProbeError

pytestmark = pytest.mark.integration


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_the_broker_accepts_connections_once_started_and_leaves_nothing_behind() -> None:
    broker = Mosquitto().start()
    pid, directory, port = broker.pid, broker.directory, broker.port
    assert pid is not None
    assert directory is not None
    assert accepts_connections(port)
    conf = (directory / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf
    assert "max_queued_messages 100000" in conf
    assert f"listener {port} 127.0.0.1" in conf

    broker.stop()

    assert not broker.running
    assert not directory.exists()
    assert not accepts_connections(port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_two_brokers_get_different_free_ports() -> None:
    with Mosquitto() as first, Mosquitto() as second:
        assert first.port != second.port
        assert accepts_connections(first.port)
        assert accepts_connections(second.port)


def test_starting_a_running_broker_is_refused(broker: Mosquitto) -> None:
    with pytest.raises(BrokerError):
        broker.start()


def test_a_broker_that_cannot_bind_its_port_reports_its_log() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = Mosquitto()
        broker.port = taken.getsockname()[1]
        with pytest.raises(BrokerError, match="did not start"):
            broker.start()
        broker.stop()


def test_an_anonymous_client_is_refused(broker: Mosquitto) -> None:
    with pytest.raises(ProbeError) as info:
        MqttProbe(broker.host, broker.port, None).connect()
    assert info.value.code == "refused"


def test_a_wrong_password_is_refused(broker: Mosquitto) -> None:
    creds = broker.add_user("dev1", "right-password")
    wrong = type(creds)("dev1", "wrong-password")
    with pytest.raises(ProbeError, match="refused"):
        MqttProbe(broker.host, broker.port, wrong).connect()
    MqttProbe(broker.host, broker.port, creds).connect().close()


def test_a_removed_user_can_no_longer_connect(broker: Mosquitto) -> None:
    creds = broker.add_user("dev1")
    MqttProbe(broker.host, broker.port, creds).connect().close()
    broker.remove_user("dev1")
    # SIGHUP reload is asynchronous: the refusal is what we wait for, with a bound.
    for _ in range(50):
        try:
            MqttProbe(broker.host, broker.port, creds).connect().close()
        except ProbeError:
            break
    else:
        pytest.fail("a removed user could still connect after the reload")


def test_restart_keeps_the_port_and_the_users() -> None:
    with Mosquitto({"dev": "pw"}) as broker:
        port = broker.port
        broker.restart()
        assert broker.port == port
        MqttProbe(broker.host, port, broker.credentials("dev")).connect().close()


def test_an_acl_limits_a_user_to_its_topics(mqtt_probe, broker: Mosquitto) -> None:  # type: ignore[no-untyped-def]
    limited = broker.add_user("limited", acl=[AclRule("write", "allowed/topic")])
    watcher = mqtt_probe()
    watcher.subscribe("#")
    client = mqtt_probe(limited)
    client.publish("forbidden/topic", b"no", qos=1)
    client.publish("allowed/topic", b"yes", qos=1)
    got = watcher.next()
    assert (got.topic, got.payload) == ("allowed/topic", b"yes")
    assert watcher.messages.empty()


def test_a_persistent_broker_killed_with_sigkill_keeps_a_session_and_its_queued_message() -> None:
    """What the hub relies on when the broker crashes: its subscription, and an intent
    queued for it while it was away, survive a SIGKILL (autosave after every change)."""
    with Mosquitto(persistence=True) as broker:
        hub = MqttProbe(
            broker.host,
            broker.port,
            broker.admin,
            client_id="hub-session",
            clean_start=False,
            session_expiry_seconds=3600,
        ).connect()
        hub.subscribe("konak/v1/acme/+/intent", qos=1)
        hub.close()
        with MqttProbe(broker.host, broker.port, broker.admin) as device:
            device.publish("konak/v1/acme/kitchen-pi/intent", b"queued while the hub was away")
            # Mosquitto saves at the end of the loop pass that handled the publish, which may
            # be after its PUBACK left: a second round trip means that pass has ended. (The
            # window is what a crash can still lose; the daemon's resends cover it.)
            device.publish("konak/v1/acme/kitchen-pi/telemetry", b"one more pass")
        broker.kill()
        broker.start()
        with MqttProbe(
            broker.host,
            broker.port,
            broker.admin,
            client_id="hub-session",
            clean_start=False,
            session_expiry_seconds=3600,
        ) as back:
            got = back.next(timeout=10)
    assert (got.topic, got.payload) == (
        "konak/v1/acme/kitchen-pi/intent",
        b"queued while the hub was away",
    )

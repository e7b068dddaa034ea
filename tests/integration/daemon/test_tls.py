"""TLS to the broker: a real Mosquitto TLS listener with a CA made in the test."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import queue
import secrets
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from konak.devtools.mosquitto import Credentials, free_port
from konak.protocol import Intent, Kind, subscription

from .conftest import RunningDaemon, Wav, command

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey]
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    is_ca = issuer[0] == subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer[0]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
    return builder.sign(issuer[1], hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _make_ca(directory: Path, name: str) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    path = directory / f"{name}.crt"
    path.write_bytes(_pem(_certificate(name, key, (name, key))))
    return path, key


@dataclass(frozen=True)
class TlsBroker:
    port: int
    ca_file: Path
    other_ca_file: Path
    username: str
    password: str
    host: str = HOST

    @property
    def admin(self) -> Credentials:
        """The one login, as the daemon's config takes a broker's."""
        return Credentials(self.username, self.password)


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    """Mosquitto with one TLS listener (server cert for 127.0.0.1) and a password file."""
    d = tmp_path / "tls-broker"
    d.mkdir()
    ca_file, ca_key = _make_ca(d, "Konak Test CA")
    other_ca_file, _ = _make_ca(d, "Somebody Else's CA")
    key = ec.generate_private_key(ec.SECP256R1())
    (d / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    (d / "server.crt").write_bytes(_pem(_certificate(HOST, key, ("Konak Test CA", ca_key))))
    password = secrets.token_urlsafe(16)
    (d / "passwd").write_text(f"device:{password}\n")
    passwd_tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([passwd_tool, "-U", str(d / "passwd")], check=True, timeout=30)
    port = free_port()
    lines = [
        f"listener {port} {HOST}",
        f"cafile {ca_file}",
        f"certfile {d / 'server.crt'}",
        f"keyfile {d / 'server.key'}",
        "allow_anonymous false",
        f"password_file {d / 'passwd'}",
        "persistence false",
        "log_dest stderr",
        "log_type all",
    ]
    if os.geteuid() == 0:
        lines.insert(0, "user root")  # the test's files are root's
    (d / "mosquitto.conf").write_text("\n".join(lines) + "\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [binary, "-c", str(d / "mosquitto.conf")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    log: list[str] = []
    for line in proc.stderr:  # ready when it says so (bounded by the test timeout)
        log.append(line)
        if " running" in line:
            break
    else:
        pytest.fail(f"mosquitto did not start: {''.join(log)}")
    drain = threading.Thread(target=proc.stderr.read, daemon=True)  # keep the pipe flowing
    drain.start()
    try:
        yield TlsBroker(port, ca_file, other_ca_file, "device", password)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        drain.join(timeout=10)
        proc.stderr.close()


def test_the_daemon_sends_its_intent_over_tls_to_a_broker_with_a_private_ca(
    tls_broker: TlsBroker, run_daemon: RunningDaemon, wav: Wav
) -> None:
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed = threading.Event()
    hub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    hub.username_pw_set(tls_broker.username, tls_broker.password)
    hub.tls_set(ca_certs=str(tls_broker.ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    hub.on_connect = lambda c, *_: c.subscribe(subscription(Kind.INTENT), qos=1)
    hub.on_subscribe = lambda *_: subscribed.set()
    hub.on_message = lambda _c, _u, msg: received.put(msg)
    hub.connect(HOST, tls_broker.port)
    hub.loop_start()
    try:
        assert subscribed.wait(timeout=30)
        daemon, _log = run_daemon(
            broker=tls_broker,
            source=wav(*command("turn on the kitchen light.")),
            hub={"tls": True, "ca_file": str(tls_broker.ca_file)},
        )
        msg = received.get(timeout=60)
    finally:
        hub.loop_stop()
        hub.disconnect()
    intent = Intent.from_payload(bytes(msg.payload), topic=msg.topic)
    assert (intent.intent, intent.slots) == ("HassTurnOn", {"area": "kitchen", "domain": "light"})
    assert daemon.hub.connected.is_set()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: queue.Queue[str] = queue.Queue()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.put(record.getMessage())


# paho does not close its SSL socket when the handshake fails (client._ssl_wrap_socket);
# the garbage collector does, with a ResourceWarning that is paho's, not ours.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_broker_certificate_from_another_ca_is_refused_with_a_clear_error(
    tls_broker: TlsBroker, run_daemon: RunningDaemon
) -> None:
    records = _Records()
    hublink_logger = logging.getLogger("konak.daemon.hublink")
    hublink_logger.addHandler(records)
    try:
        daemon, _log = run_daemon(
            broker=tls_broker, hub={"tls": True, "ca_file": str(tls_broker.other_ca_file)}
        )
        message = records.messages.get(timeout=30)
    finally:
        hublink_logger.removeHandler(records)
    assert message.startswith(f"TLS to the broker {HOST}:{tls_broker.port} failed: ")
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert "hub.ca_file" in message
    assert not daemon.hub.connected.is_set()

"""A client for Mosquitto's dynamic security plugin: per-device broker identities.

Each device gets its own login and a role allowing exactly its own topics
(:func:`konak.protocol.device_acl`), bound to one MQTT client id (the plugin's ``clientid``):
the broker refuses that login with any other client id, so a device cannot connect under
the hub's or another device's id and take its session over. Deleting or disabling a client
disconnects it at once, which is how revocation takes effect. Commands travel on
``$CONTROL/dynamic-security/v1`` and are answered on ``…/response``.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Final, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from konak.errors import KonakError
from konak.protocol import device_acl
from konak.protocol.topics import is_identifier

logger = logging.getLogger(__name__)

CONTROL_TOPIC: Final = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC: Final = f"{CONTROL_TOPIC}/response"
TIMEOUT_SECONDS: Final = 10.0


class DynsecError(KonakError):
    """The broker refused or did not answer a dynamic-security command."""

    code = "dynsec_error"


@dataclass(frozen=True, slots=True)
class DeviceLogin:
    """The broker login of one device; the password is shown once, never logged."""

    tenant: str
    device: str
    username: str
    password: str = field(repr=False)
    client_id: str = ""

    def __post_init__(self) -> None:
        if not self.client_id:
            object.__setattr__(self, "client_id", self.username)


def device_username(tenant: str, device: str) -> str:
    """The broker username of a device (ids cannot contain '.', so this is unambiguous)."""
    if not (is_identifier(tenant) and is_identifier(device)):
        raise DynsecError(f"invalid tenant or device id: {tenant!r}/{device!r}", code="bad_id")
    return f"{tenant}.{device}"


def device_client_id(tenant: str, device: str) -> str:
    """The only MQTT client id a device's login is accepted with: its username, which is
    unique (``konak-<tenant>-<device>`` would not be: tenant ``a-b`` device ``c`` and tenant
    ``a`` device ``b-c`` would share it)."""
    return device_username(tenant, device)


def device_role(tenant: str, device: str) -> str:
    """The role holding one device's ACL."""
    return f"device.{device_username(tenant, device)}"


def device_acls(tenant: str, device: str) -> list[dict[str, Any]]:
    """Dynamic-security ACL entries for exactly the device's own topics."""
    acls: list[dict[str, Any]] = []
    for access, topic in device_acl(tenant, device):
        if access == "write":
            acls.append({"acltype": "publishClientSend", "topic": topic, "allow": True})
        else:
            acls.append({"acltype": "subscribeLiteral", "topic": topic, "allow": True})
            acls.append({"acltype": "publishClientReceive", "topic": topic, "allow": True})
    return acls


class DynsecAdmin:
    """Sends dynamic-security commands as the broker's admin and waits for each answer."""

    def __init__(self, host: str, port: int, username: str, password: str) -> None:
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"konak-dynsec-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._host, self._port = host, port
        self._ready = threading.Event()
        self._connect_error: str | None = None
        self._answers: dict[str, dict[str, Any]] = {}
        self._answered = threading.Condition()

    # -- connection --------------------------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, rc: ReasonCode, p: object
    ) -> None:
        if rc.is_failure:
            self._connect_error = str(rc)
        else:
            client.subscribe(RESPONSE_TOPIC, qos=1)
        self._ready.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(msg.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed dynamic-security response")
            return
        with self._answered:
            for response in responses if isinstance(responses, list) else []:
                if isinstance(response, dict) and "correlationData" in response:
                    self._answers[str(response["correlationData"])] = response
            self._answered.notify_all()

    def connect(self) -> Self:
        """Connect as the admin; raises DynsecError when refused."""
        try:
            self._client.connect(self._host, self._port, keepalive=30)
        except OSError as exc:
            raise DynsecError(f"cannot reach the broker: {exc}", code="unreachable") from exc
        self._client.loop_start()
        if not self._ready.wait(TIMEOUT_SECONDS) or self._connect_error:
            self.close()
            raise DynsecError(f"broker refused the admin login: {self._connect_error}")
        return self

    def close(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()
        # paho keeps its socket (after a refusal) and a wake-up socket pair until the client
        # is garbage-collected; close them now so nothing leaks into later tests.
        self._client._reset_sockets()

    def __enter__(self) -> Self:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands ----------------------------------------------------------------------
    def command(self, name: str, **fields: Any) -> dict[str, Any]:
        """Send one command and return its response; raises DynsecError on an error."""
        correlation = uuid.uuid4().hex
        body = {"commands": [{"command": name, **fields, "correlationData": correlation}]}
        self._client.publish(CONTROL_TOPIC, json.dumps(body), qos=1)
        with self._answered:
            if not self._answered.wait_for(lambda: correlation in self._answers, TIMEOUT_SECONDS):
                raise DynsecError(f"no answer to {name} within {TIMEOUT_SECONDS}s", code="timeout")
            response = self._answers.pop(correlation)
        if response.get("error"):
            raise DynsecError(f"{name}: {response['error']}", code="refused")
        return response

    def create_device(self, tenant: str, device: str) -> DeviceLogin:
        """Create (or re-create, with a new password) the identity of one device."""
        username = device_username(tenant, device)
        role = device_role(tenant, device)
        password = secrets.token_urlsafe(24)
        self._ensure_absent("deleteClient", username=username)
        self._ensure_absent("deleteRole", rolename=role)
        self.command("createRole", rolename=role, acls=device_acls(tenant, device))
        client_id = device_client_id(tenant, device)
        self.create_client(username, password, client_id, role)
        logger.info("broker identity created for %s", username)
        return DeviceLogin(tenant, device, username, password, client_id)

    def create_client(self, username: str, password: str, client_id: str, role: str) -> None:
        """Create a login that the broker accepts only with ``client_id`` (a device's, or
        the hub's own ``[mqtt] client_id``), holding ``role``."""
        if not client_id:
            raise DynsecError("a broker login needs a fixed client id", code="bad_id")
        self.command(
            "createClient",
            username=username,
            password=password,
            clientid=client_id,
            roles=[{"rolename": role}],
        )

    def revoke_device(self, tenant: str, device: str) -> None:
        """Delete a device's identity; a connected device is disconnected at once."""
        username = device_username(tenant, device)
        self._ensure_absent("deleteClient", username=username)
        self._ensure_absent("deleteRole", rolename=device_role(tenant, device))
        logger.info("broker identity revoked for %s", username)

    def list_clients(self) -> list[str]:
        """Usernames of every client the plugin knows."""
        response = self.command("listClients", verbose=False)
        clients = response.get("data", {}).get("clients", [])
        return [str(c) for c in clients]

    def _ensure_absent(self, name: str, **fields: Any) -> None:
        try:
            self.command(name, **fields)
        except DynsecError as exc:
            if "not found" not in exc.message.lower():
                raise

"""A daemon's HubLink and outbox on the real broker, without the audio pipeline."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from konak.daemon.hublink import HubLink
from konak.daemon.outbox import Outbox
from konak.daemon.settings import DeviceSettings, HubLinkSettings
from konak.devtools.mosquitto import AclRule, Credentials, Mosquitto
from konak.protocol import Intent, Message, Status, device_acl

TENANT, DEVICE = "acme", "kitchen-pi"
T = TypeVar("T")


class Clock:
    """The wall clock shifted by ``offset`` seconds, which a test may change."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass(frozen=True)
class DeviceAccount:
    """The test device's own broker login and the topics it may use."""

    credentials: Credentials
    acl: list[AclRule]

    def hub_keys(self) -> dict[str, str]:
        """The daemon config's [hub] keys for this login."""
        return {"username": self.credentials.username, "password": self.credentials.password}


def device_login(broker: Mosquitto) -> DeviceAccount:
    """Give the test device its own login on ``broker``, limited to its topics."""
    acl = [AclRule(access, topic) for access, topic in device_acl(TENANT, DEVICE)]
    return DeviceAccount(broker.add_user(f"{TENANT}.{DEVICE}", acl=acl), acl)


def restart_watched(broker: Mosquitto, login: DeviceAccount, watch: Callable[[], T]) -> T:
    """Start the killed ``broker`` again with what ``watch`` subscribes (a probe) in place
    before the device can log in again and send what it queued; what ``watch`` returned."""
    broker.remove_user(login.credentials.username)
    broker.start()
    watcher = watch()
    broker.add_user(login.credentials.username, login.credentials.password, acl=login.acl)
    return watcher


def hub_settings(
    broker: Mosquitto,
    queue_path: Path,
    login: Credentials | None = None,
    *,
    resend_seconds: float = 600.0,
) -> HubLinkSettings:
    """The [hub] settings of a device logging in to ``broker`` (as its admin unless given a
    login); by default nothing the hub leaves unanswered is resent during a test (the probes
    standing in for it never answer)."""
    login = login or broker.admin
    return HubLinkSettings(
        host=broker.host,
        port=broker.port,
        username=login.username,
        password=login.password,
        reconnect_seconds=0.25,
        queue_path=queue_path,
        resend_seconds=resend_seconds,
    )


def intent(turn_id: str, expires_at: float | None = None) -> Intent:
    """A kitchen light intent of the test device."""
    return Intent(
        tenant=TENANT,
        device=DEVICE,
        turn_id=turn_id,
        text="turn on the kitchen light",
        intent="HassTurnOn",
        slots={"name": "kitchen light"},
        expires_at=expires_at,
    )


def online() -> Status:
    """The test device's online status."""
    return Status(tenant=TENANT, device=DEVICE, state="online")


@contextmanager
def running_link(
    settings: HubLinkSettings,
    outbox: Outbox,
    clock: Clock | None = None,
    on_message: Callable[[Message], None] | None = None,
) -> Iterator[HubLink]:
    """A started HubLink (replies and commands ignored unless ``on_message``), stopped
    afterwards."""
    received: list[Message] = []
    link = HubLink(
        DeviceSettings(TENANT, DEVICE), settings, outbox, on_message or received.append, online,
        clock=clock or Clock(),
    )  # fmt: skip
    link.start()
    try:
        yield link
    finally:
        link.stop()

"""Telling systemd how the service is doing (sd_notify), for the daemon and the hub.

Through systemd-python's ``systemd.daemon.notify`` (the ``systemd`` extra) when it is
installed. That extra is optional and needs libsystemd-dev to build, so a supported
install can lack it (``konak[hub]`` alone, a device image without the headers), and
the units are ``Type=notify``: a service that never sends ``READY=1`` is killed at its
start timeout. Without the extra the datagram is therefore sent here, which is all
sd_notify(3) does: ``KEY=value`` lines in one datagram to ``$NOTIFY_SOCKET`` (a path,
or ``@name`` for an abstract socket).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections.abc import Callable

logger = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send ``state`` (``KEY=value`` lines) to the service manager; whether it was sent
    (False without one, or when sending failed: logged, never raised)."""
    try:
        return bool(_sender()(state))
    except OSError as exc:
        logger.debug("sd_notify failed: %s", exc)
        return False


@functools.cache
def _sender() -> Callable[[str], bool]:
    try:
        from systemd.daemon import notify as sd_notify  # type: ignore[import-untyped]
    except ImportError:
        return _send
    return sd_notify  # type: ignore[no-any-return]


def _send(state: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(state.encode(), address)
    return True

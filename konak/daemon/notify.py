"""systemd integration that degrades to nothing: sd_notify and journald logging."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Mapping

logger = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify datagrams to ``$NOTIFY_SOCKET``; a no-op without it."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # an abstract socket
        self.address = address or None
        self._sock: socket.socket | None = None
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens."""
        return self._sock is not None

    def notify(self, **fields: str) -> None:
        """Send ``KEY=value`` lines, e.g. ``notify(READY="1", STATUS="listening")``."""
        if self._sock is None or self.address is None:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            self._sock.sendto(message.encode(), self.address)
        except OSError as exc:
            logger.debug("sd_notify failed: %s", exc)

    def close(self) -> None:
        """Release the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def setup_logging(level: str, environ: Mapping[str, str] | None = None) -> str:
    """Log to journald with structured fields when stdout is the journal, else stdout.

    Returns which one was chosen ("journal" or "stdout").
    """
    env = os.environ if environ is None else environ
    root = logging.getLogger()
    handler: logging.Handler
    chosen = "stdout"
    if env.get("JOURNAL_STREAM"):
        try:
            from systemd.journal import JournalHandler  # type: ignore[import-untyped]

            handler = JournalHandler(SYSLOG_IDENTIFIER="konak-daemon")
            chosen = "journal"
        except ImportError:
            handler = logging.StreamHandler(sys.stdout)
    else:
        handler = logging.StreamHandler(sys.stdout)
    if chosen == "stdout":
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return chosen

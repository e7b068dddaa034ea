"""systemd integration that degrades to nothing: sd_notify and journald logging."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from konak import sdnotify

logger = logging.getLogger(__name__)


class Notifier:
    """The daemon's sd_notify fields (:mod:`konak.sdnotify`); a no-op without a service
    manager (``environ`` lacks ``NOTIFY_SOCKET``), e.g. ``Notifier({})`` in tests."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.enabled = bool(env.get("NOTIFY_SOCKET"))

    def notify(self, **fields: str) -> None:
        """Send ``KEY=value`` lines, e.g. ``notify(READY="1", STATUS="listening")``."""
        if self.enabled:
            sdnotify.notify("\n".join(f"{key}={value}" for key, value in fields.items()))


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

"""sd_notify datagrams, events and logging set-up."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from konak.daemon.events import Event, EventBus
from konak.daemon.notify import Notifier, setup_logging


def test_notifications_reach_the_notify_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = str(tmp_path / "n.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        notifier = Notifier()
        notifier.notify(READY="1", STATUS="listening")
        assert sock.recv(1024) == b"READY=1\nSTATUS=listening"


def test_without_a_service_manager_notifications_do_nothing() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    notifier.notify(READY="1")


def test_without_journald_logs_go_to_stdout(capsys) -> None:  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        assert setup_logging("INFO", {}) == "stdout"
        logging.getLogger("konak.test").info("hello %s", "there")
        assert "hello there" in capsys.readouterr().out
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.mark.expect_error_log(match="event subscriber failed")
def test_a_failing_subscriber_does_not_stop_the_others(caplog) -> None:  # type: ignore[no-untyped-def]
    bus = EventBus()
    got: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(lambda e: got.append(e.type))
    with caplog.at_level(logging.ERROR):
        bus.emit(Event("run-start", "t-1"))
    unsubscribe()
    bus.emit(Event("run-end", "t-1"))
    assert got == ["run-start"]
    assert "event subscriber failed on run-start" in caplog.text

"""sd_notify through systemd-python, or the fallback when the extra is not installed."""

from __future__ import annotations

import secrets
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from konak import sdnotify


@pytest.fixture(params=["systemd-python", "fallback"])
def sender(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each way of sending: libsystemd's, and the one used without the ``systemd`` extra."""
    if request.param == "systemd-python":
        pytest.importorskip("systemd.daemon")
    else:
        monkeypatch.setitem(sys.modules, "systemd.daemon", None)
    sdnotify._sender.cache_clear()
    yield request.param
    sdnotify._sender.cache_clear()


@pytest.mark.parametrize("abstract", [False, True])
def test_a_state_reaches_the_notify_socket(
    sender: str, abstract: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"konak-test-{secrets.token_hex(8)}" if abstract else str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name if abstract else name)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name if abstract else name)
        assert sdnotify.notify("READY=1\nSTATUS=serving")
        assert sock.recv(1024) == b"READY=1\nSTATUS=serving"


def test_without_a_service_manager_nothing_is_sent(
    sender: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not sdnotify.notify("READY=1")


def test_a_socket_nobody_listens_on_is_not_an_error(
    sender: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert not sdnotify.notify("STOPPING=1")

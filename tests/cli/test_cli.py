from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from konak.cli import main
from konak.devtools.mosquitto import Credentials
from konak.devtools.probe import MqttProbe
from konak.protocol import Intent
from tests.conftest import KONAK, konak, one_error_line


def test_an_unknown_command_exits_2_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["telepathy"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_decode_prints_a_valid_payload() -> None:
    msg = Intent(tenant="acme", device="pi", turn_id="turn-00000001", text="hello")
    result = konak("protocol", "decode", msg.topic, input=msg.to_payload().decode())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["turn_id"] == "turn-00000001"


@pytest.mark.parametrize(
    ("topic", "payload", "code"),
    [
        ("konak/v1/acme/pi/intent", b"{oops", "malformed_json"),
        ("konak/v1/acme/pi/intent", b'{"v": 9, "type": "intent"}', "unknown_version"),
        ("not/a/topic", b"{}", "bad_topic"),
    ],
)
def test_decode_reports_a_bad_payload_in_one_line_and_exits_1(
    topic: str, payload: bytes, code: str
) -> None:
    line = one_error_line(konak("protocol", "decode", topic, input=payload.decode()))
    assert line.startswith("konak protocol: ")
    assert line.endswith(f"[{code}]")


@pytest.mark.integration
def test_broker_run_serves_until_sigterm_and_stops_cleanly(tmp_path: Path) -> None:
    creds_file = tmp_path / "broker.json"
    with subprocess.Popen(
        [*KONAK, "broker", "run", "--credentials-file", str(creds_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        _serve_then_stop(proc, creds_file)


def _serve_then_stop(proc: subprocess.Popen[str], creds_file: Path) -> None:
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once the broker accepts connections
        assert "mosquitto on 127.0.0.1:" in first
        assert creds_file.stat().st_mode & 0o777 == 0o600
        info = json.loads(creds_file.read_text())
        assert info["password"] not in first, "the password is never printed"
        probe = MqttProbe(
            info["host"], info["port"], Credentials(info["username"], info["password"])
        )
        probe.connect().close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

"""`konak daemon run` as systemd runs it: sd_notify, signals, bad configuration."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from konak.devtools.mosquitto import Mosquitto

from .conftest import daemon_config, to_toml

pytestmark = pytest.mark.integration

KONAK = [sys.executable, "-m", "konak.cli"]


def _notifications(sock: socket.socket, until: str, seen: list[str]) -> list[str]:
    while not any(line == until for msg in seen for line in msg.splitlines()):
        seen.append(sock.recv(4096).decode())
    return seen


def test_the_daemon_notifies_ready_watchdog_stopping_refuses_a_bad_reload_and_exits_0(
    broker: Mosquitto, tmp_path: Path, models_dir: Path
) -> None:
    config = tmp_path / "daemon.toml"
    raw = daemon_config(broker, tmp_path, models_dir, audio={"source": "none", "sink": "none"})
    raw["watchdog_interval_seconds"] = 0.5
    config.write_text(to_toml(raw))
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(60)
        env = {**os.environ, "NOTIFY_SOCKET": address}
        proc = subprocess.Popen(
            [*KONAK, "daemon", "run", "--config", str(config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            seen: list[str] = []
            _notifications(sock, "READY=1", seen)
            _notifications(sock, "WATCHDOG=1", seen)
            config.write_text("[device]\ntenant = 'acme'\n")  # broken: reload must refuse it
            proc.send_signal(signal.SIGHUP)
            proc.send_signal(signal.SIGTERM)
            _notifications(sock, "STOPPING=1", seen)
            assert proc.wait(timeout=5) == 0
        finally:
            proc.kill()
            output = proc.communicate()[0].decode()
    lines = [line for msg in seen for line in msg.splitlines()]
    assert lines.index("STATUS=loading models") < lines.index("READY=1")
    assert lines.index("READY=1") < lines.index("WATCHDOG=1") < lines.index("STOPPING=1")
    assert "Traceback" not in output
    assert "reload refused: " in output
    assert "device.device: required" in output


DEVICE = "[device]\ntenant = 'acme'\ndevice = 'pi'\n"
NO_MIC = "[audio]\nsource = 'pyaudio'\ninput_device = 'no-such-mic'\nsink = 'none'\n"
BAD_CONFIGS = [
    (DEVICE + "colour = 'red'\n", "device.colour: unknown key"),
    (DEVICE + "[vad]\nthreshold = 'high'\n", "vad.threshold: must be a number"),
    ("[device]\ntenant = 'acme'\n", "device.device: required"),
    (DEVICE + "[tts]\nmodel = 'no-such-voice'\n", "tts.model: model 'no-such-voice' is not usable"),
    (DEVICE + NO_MIC, "no audio input device matching 'no-such-mic'"),
    (DEVICE + "[wake]\nwords = [{ model = 'oww-no-such-word' }]\n", "wake.words[0].model"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_each_bad_config_is_one_line_naming_the_key_and_a_nonzero_exit(
    text: str, expected: str, tmp_path: Path, models_dir: Path
) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text(f"{text}[models]\ndir = '{models_dir}'\n")
    proc = subprocess.run(
        [*KONAK, "daemon", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("konak daemon:")]
    assert len(error_lines) == 1, proc.stderr
    assert expected in error_lines[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[device\n", "not valid TOML"), ("\xff\xfe", "not UTF-8 text (byte 0xff at offset 0)")],
)
def test_an_unreadable_config_file_is_one_line_naming_the_file(
    text: str, expected: str, tmp_path: Path
) -> None:
    config = tmp_path / "daemon.toml"
    config.write_bytes(text.encode("latin-1"))
    proc = subprocess.run(
        [*KONAK, "daemon", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"konak daemon: {config}: ")
    assert expected in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_a_missing_config_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    proc = subprocess.run(
        [*KONAK, "daemon", "run", "--config", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"konak daemon: {missing}: no such file [config_invalid]"


def test_transcribe_prints_each_stage_and_say_writes_a_wav(
    tmp_path: Path, models_dir: Path, wav
) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text(
        f"{DEVICE}[models]\ndir = '{models_dir}'\n[audio]\nsource = 'none'\nsink = 'none'\n"
        "[intent.slot_lists]\nname = ['kitchen light']\narea = ['kitchen']\n"
    )
    source = wav(1.0, "Hey Jarvis,", 0.3, "turn on the kitchen light.", 1.5)
    proc = subprocess.run(
        [*KONAK, "daemon", "transcribe", str(source), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    stages = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert stages["wake"].startswith("wake    hey_jarvis")
    assert stages["stt"].startswith("stt     turn on the kitchen light")
    assert "HassTurnOn" in stages["intent"]
    assert all(line.rstrip().endswith("ms") for line in proc.stdout.splitlines())

    out = tmp_path / "hello.wav"
    subprocess.run(
        [*KONAK, "daemon", "say", "What time is it?", "-o", str(out), "--config", str(config)],
        capture_output=True,
        timeout=120,
        check=True,
    )
    proc = subprocess.run(
        [*KONAK, "daemon", "transcribe", str(out), "--no-wake", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "HassGetCurrentTime" in proc.stdout

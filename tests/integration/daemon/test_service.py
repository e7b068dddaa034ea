"""`konak daemon run` as systemd runs it: sd_notify, signals, bad configuration."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import konak, one_error_line

from .conftest import DaemonToml, SpawnDaemon, Wav, command

pytestmark = pytest.mark.integration


def test_the_daemon_notifies_ready_watchdog_stopping_refuses_a_bad_reload_and_exits_0(
    daemon_toml: DaemonToml, spawn_daemon: SpawnDaemon
) -> None:
    config = daemon_toml(audio={"source": "none", "sink": "none"}, watchdog_interval_seconds=0.5)
    daemon = spawn_daemon(config)
    daemon.notes.wait("READY=1")
    daemon.notes.wait("WATCHDOG=1")
    config.write_text("[device]\ntenant = 'acme'\n")  # broken: reload must refuse it
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.notes.wait("STOPPING=1")
    assert daemon.proc.wait(timeout=5) == 0
    output = daemon.finish()
    lines = daemon.notes.lines
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
    # The daemon logs (and ALSA talks) on stderr before it fails: one of its lines is the error.
    done = konak("daemon", "run", "--config", str(config), timeout=60)
    assert expected in one_error_line(done, prefix="konak daemon:")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[device\n", "not valid TOML"), ("\xff\xfe", "not UTF-8 text (byte 0xff at offset 0)")],
)
def test_an_unreadable_config_file_is_one_line_naming_the_file(
    text: str, expected: str, tmp_path: Path
) -> None:
    config = tmp_path / "daemon.toml"
    config.write_bytes(text.encode("latin-1"))
    line = one_error_line(konak("daemon", "run", "--config", str(config), timeout=60))
    assert line.startswith(f"konak daemon: {config}: ")
    assert expected in line


def test_a_missing_config_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    line = one_error_line(konak("daemon", "run", "--config", str(missing), timeout=60))
    assert line == f"konak daemon: {missing}: no such file [config_invalid]"


def test_transcribe_prints_each_stage_and_say_writes_a_wav(
    tmp_path: Path, models_dir: Path, wav: Wav
) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text(
        f"{DEVICE}[models]\ndir = '{models_dir}'\n[audio]\nsource = 'none'\nsink = 'none'\n"
        "[intent.slot_lists]\nname = ['kitchen light']\narea = ['kitchen']\n"
    )
    source = wav(*command("turn on the kitchen light."))
    proc = konak("daemon", "transcribe", str(source), "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    stages = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert stages["wake"].startswith("wake    hey_jarvis")
    assert stages["stt"].startswith("stt     turn on the kitchen light")
    assert "HassTurnOn" in stages["intent"]
    assert all(line.rstrip().endswith("ms") for line in proc.stdout.splitlines())

    out = tmp_path / "hello.wav"
    said = konak("daemon", "say", "What time is it?", "-o", str(out), "--config", str(config))
    assert said.returncode == 0, said.stderr
    proc = konak("daemon", "transcribe", str(out), "--no-wake", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    assert "HassGetCurrentTime" in proc.stdout

"""The PyAudio (PortAudio -> ALSA) source and sink, through ALSA's user-space file plugin.

No sound card here: an ``~/.asoundrc`` in a temp HOME defines a capture PCM that reads
a raw file (``infile``) and a playback PCM that writes one, both over the ``null`` PCM.
The daemon runs as a real ``konak daemon run`` process with that HOME.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from konak.devtools.probe import MqttProbe, ProbeError, Received
from konak.protocol import Intent, Kind

from .conftest import DaemonToml, Listen, SpawnDaemon, Speech, command

pytestmark = pytest.mark.integration

ASOUNDRC = """\
pcm.konakmic {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{infile}"
    format "raw"
    hint {{ show on description "Konak test microphone" }}
}}
pcm.konakspeaker {{
    type file
    slave.pcm "null"
    file "{outfile}"
    format "raw"
    hint {{ show on description "Konak test speaker" }}
}}
"""


def _next_or_none(hub: MqttProbe, timeout: float) -> Received | None:
    try:
        return hub.next(timeout=timeout)
    except ProbeError:
        return None


def test_the_pyaudio_source_and_sink_work_through_alsa_file_pcms(
    listen: Listen,
    daemon_toml: DaemonToml,
    spawn_daemon: SpawnDaemon,
    speech: Speech,
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    infile, outfile = tmp_path / "mic.raw", tmp_path / "speaker.raw"
    said = speech(*command("turn on the kitchen light.", tail=3.0))
    infile.write_bytes(said.astype("<i2").tobytes())
    (home / ".asoundrc").write_text(ASOUNDRC.format(infile=infile, outfile=outfile))
    hub = listen(Kind.INTENT)
    audio = {
        "source": "pyaudio", "input_device": "konakmic",
        "sink": "pyaudio", "output_device": "konakspeaker",
    }  # fmt: skip
    daemon = spawn_daemon(daemon_toml(audio=audio), env={"HOME": str(home)})
    received = _next_or_none(hub, timeout=90)
    daemon.proc.send_signal(signal.SIGTERM)
    status = daemon.proc.wait(timeout=10)
    output = daemon.finish()
    assert received is not None, output
    intent = Intent.from_payload(received.payload, topic=received.topic)
    assert (intent.intent, intent.slots) == ("HassTurnOn", {"area": "kitchen", "domain": "light"})
    assert status == 0, output


def test_the_pyaudio_sink_plays_into_an_alsa_file_pcm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from konak.daemon.audio import PyAudioSink, tone

    home = tmp_path / "home"
    home.mkdir()
    outfile = tmp_path / "speaker.raw"
    (home / ".asoundrc").write_text(ASOUNDRC.format(infile="/dev/null", outfile=outfile))
    monkeypatch.setenv("HOME", str(home))
    sink = PyAudioSink("konakspeaker")
    sink.play(tone(440, 1.0), 16_000)
    sink.close()
    played = outfile.read_bytes()
    assert len(played) >= 2 * 22_050 * 0.9  # about 1 s at the sink's 22.05 kHz, int16
    assert any(played)

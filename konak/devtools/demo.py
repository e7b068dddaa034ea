"""``konak demo``: one whole voice turn on a machine with no sound card.

It starts a private Mosquitto, the real hub (``konak hub run``) with konak-home
fulfilling intents over MCP, and the real device daemon reading a WAV file of a spoken
command ("Hey Jarvis, turn on the kitchen light", synthesised once with the project's
voice) instead of a microphone; the daemon speaks the hub's reply into a WAV file.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

from konak.devtools.localhub import local_hub
from konak.devtools.mosquitto import AclRule, Credentials, Mosquitto
from konak.devtools.probe import MqttProbe, ProbeError
from konak.errors import KonakError
from konak.protocol import Kind, device_acl, subscription

logger = logging.getLogger(__name__)

TENANT: Final = "demo"
DEVICE: Final = "kitchen-pi"
LIGHT: Final = "kitchen light"
TURN_TIMEOUT_SECONDS: Final = 120.0
WAKE_WORD: Final = "Hey Jarvis,"
# The wake word the demo says anyway, if --text starts with it too.
_SAID_WAKE_WORD: Final = re.compile(r"\s*(?:hey\s+)?jarvis\b[\s,.!?;:]*", re.IGNORECASE)


def spoken_command(text: str) -> str:
    """The command of ``--text`` without a leading wake word (the demo says it once)."""
    said = _SAID_WAKE_WORD.match(text)
    return text[said.end() if said else 0 :].strip()


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``demo`` options."""
    parser.add_argument("--out", type=Path, default=Path("out/reply.wav"), help="reply WAV")
    parser.add_argument("--text", default="turn on the kitchen light", help="the command")
    parser.set_defaults(handler=run)


def _show(direction: str, topic: str, payload: bytes) -> None:
    print(f"  {direction:<16} {topic}\n  {'':<16} {payload.decode(errors='replace')}")


def _models_dir() -> Path:
    from konak.edge_models.settings import ModelSettings

    settings = ModelSettings.resolve(
        models_dir=None, accept_licenses=(), environ=os.environ, config={}
    )
    return settings.models_dir


def run(args: argparse.Namespace) -> int:
    """Run one turn: command WAV in, reply WAV out."""
    from konak.daemon.errors import DaemonError

    out: Path = args.out
    text = spoken_command(args.text)
    if not text:
        print(
            f"konak demo: --text {args.text!r} has no command after the wake word", file=sys.stderr
        )
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        settings, engines = _device(out, Credentials("", ""), 0)  # load models first
    except (DaemonError, KonakError) as exc:
        print(f"konak demo: {exc}; run `make setup` to fetch the models")
        return 1
    command = out.with_name("command.wav")
    seconds = _write_command(engines, text, command)
    print(f'1. The spoken command "{WAKE_WORD} {text}" is {command} ({seconds:.1f} s)')
    with tempfile.TemporaryDirectory(prefix="konak-demo-") as tmp, Mosquitto() as broker:
        print(f"2. Mosquitto on {broker.host}:{broker.port} (authentication, per-device ACL)")
        acl = [AclRule(access, topic) for access, topic in device_acl(TENANT, DEVICE)]
        login = broker.add_user(f"{TENANT}.{DEVICE}", acl=acl)
        with local_hub(Path(tmp), broker, TENANT, [(LIGHT, "kitchen")]) as hub:
            print(f"3. The hub runs (pid {hub.process.pid}) with konak-home over MCP (stdio)")
            with MqttProbe(broker.host, broker.port, broker.admin) as wire:
                wire.subscribe(subscription(Kind.INTENT, tenant=TENANT))
                wire.subscribe(subscription(Kind.REPLY, tenant=TENANT))
                wire.subscribe("zigbee2mqtt/#")
                settings, _ = _device(out, login, broker.port, command, settings)
                print("4. The device daemon listens to the WAV; what each stage found:")
                _run_daemon(settings, engines)
                print("5. What crossed the broker (the device sent no audio):")
                while True:
                    try:
                        got = wire.next(timeout=0.5)
                    except ProbeError:
                        break
                    _show("", got.topic, got.payload)
    print(f"6. The daemon spoke the reply into {out}")
    return 0


def _device(
    out: Path,
    login: Credentials,
    port: int,
    command: Path | None = None,
    loaded: Any = None,
) -> tuple[Any, Any]:
    """Daemon settings for the demo device (and its engines, loaded once)."""
    from konak.daemon.engines import load_engines
    from konak.daemon.settings import parse

    raw: dict[str, Any] = {
        "device": {"tenant": TENANT, "device": DEVICE, "area": "kitchen", "name": "Kitchen Pi"},
        "audio": {"source": "none", "sink": "wav", "sink_path": str(out)},
        "intent": {"slot_lists": {"name": [LIGHT], "area": ["kitchen"]}},
        "hub": {
            "host": "127.0.0.1",
            "port": port or 1883,
            "username": login.username,
            "password": login.password,
            "queue_path": str(out.with_name("demo-queue.sqlite3")),
        },
        "tts": {"threads": 2},
    }
    if command is not None:
        raw["audio"] |= {"source": "file", "source_path": str(command)}
    settings = parse(raw, base_dir=Path.cwd(), default_models_dir=_models_dir())
    return settings, (None if loaded is not None else load_engines(settings))


def _write_command(engines: Any, text: str, path: Path) -> float:
    from konak.daemon.audio import RATE_HZ, write_wav
    from konak.daemon.tts import spoken

    audio = spoken(engines.tts.voice, 1.0, WAKE_WORD, 0.3, f"{text}.", 2.5)
    write_wav(path, audio, RATE_HZ)
    return len(audio) / RATE_HZ


def _run_daemon(settings: Any, engines: Any) -> None:
    from konak.daemon.audio import open_sink, open_source
    from konak.daemon.service import Daemon

    daemon = Daemon(settings, engines, open_source(settings.audio), open_sink(settings.audio))
    ended = threading.Event()
    started = time.monotonic()

    def show(event: Any) -> None:
        if event.type.endswith("-start") and event.type != "run-start":
            return
        details = " ".join(f"{k}={v}" for k, v in event.data.items())
        print(f"   {(event.at - started) * 1000:8.0f} ms  {event.type:<12} {details}")
        if event.type == "run-end":
            ended.set()

    daemon.bus.subscribe(show)
    thread = threading.Thread(target=daemon.run, name="demo-daemon", daemon=True)
    thread.start()
    try:
        if not ended.wait(TURN_TIMEOUT_SECONDS):
            print("   (the turn did not end in time)")
    finally:
        daemon.stop()
        thread.join(timeout=10)

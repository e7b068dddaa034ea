"""``konak demo``: one voice turn across a real broker, on a machine with no sound card.

It starts a private Mosquitto, the real hub (``konak hub run``) with konak-home
fulfilling intents over MCP, and a device side that speaks only the wire contract; the
reply is spoken into a WAV file with the project's piper voice. Until the device daemon
lands, the device side sends the intent a user's spoken command would produce.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import uuid
import wave
from pathlib import Path
from typing import Final

from konak.devtools.localhub import READY_TIMEOUT_SECONDS, local_hub
from konak.devtools.mosquitto import AclRule, Mosquitto
from konak.devtools.probe import MqttProbe, ProbeError
from konak.errors import KonakError
from konak.protocol import Intent, Kind, Reply, Status, decode, device_acl, subscription

logger = logging.getLogger(__name__)

TENANT: Final = "demo"
DEVICE: Final = "kitchen-pi"
LIGHT: Final = "kitchen light"
VOICE_MODEL: Final = "piper-en-us-joe-medium"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``demo`` options."""
    parser.add_argument("--out", type=Path, default=Path("out/reply.wav"), help="reply WAV")
    parser.add_argument("--text", default="turn on the kitchen light", help="the command")
    parser.set_defaults(handler=run)


def _show(direction: str, topic: str, payload: bytes) -> None:
    print(f"  {direction:<16} {topic}\n  {'':<16} {payload.decode(errors='replace')}")


def _turn(device: MqttProbe, text: str) -> Intent:
    return Intent(
        tenant=TENANT,
        device=DEVICE,
        turn_id=uuid.uuid4().hex,
        text=text,
        intent="HassTurnOn",
        slots={"name": LIGHT},
        area="kitchen",
        speech_ended_at=time.time(),
    )


def run(args: argparse.Namespace) -> int:
    """Run one turn and write the reply to ``args.out``."""
    with tempfile.TemporaryDirectory(prefix="konak-demo-") as tmp, Mosquitto() as broker:
        print(f"1. Mosquitto on {broker.host}:{broker.port} (authentication, per-device ACL)")
        device_login = broker.add_user(
            f"{TENANT}.{DEVICE}",
            acl=[AclRule(access, topic) for access, topic in device_acl(TENANT, DEVICE)],
        )
        with local_hub(Path(tmp), broker, TENANT, [(LIGHT, "kitchen")]) as hub:
            print(f"2. The hub runs (pid {hub.process.pid}) with konak-home over MCP (stdio)")
            with (
                MqttProbe(broker.host, broker.port, broker.admin) as lights,
                MqttProbe(broker.host, broker.port, device_login) as device,
            ):
                lights.subscribe("zigbee2mqtt/#")
                device.subscribe(subscription(Kind.REPLY, tenant=TENANT, device=DEVICE))
                status = Status(tenant=TENANT, device=DEVICE, state="online", area="kitchen")
                device.publish(status.topic, status.to_payload(), retain=True)
                print(f'3. The device recognised "{args.text}"; it sends the intent, no audio:')
                answer = _ask(device, args.text)
                try:
                    got = lights.next(timeout=1)
                    print("4. konak-home switched the light (Zigbee2MQTT convention):")
                    _show("hub -> light", got.topic, got.payload)
                except ProbeError:
                    print("4. (no light command was published)")
    print("5. The device speaks the reply:")
    try:
        seconds = speak(answer.text, args.out)
    except KonakError as exc:
        print(f"   (not spoken: {exc.message}; run `make setup` to fetch the voice)")
        return 0
    print(f"   wrote {args.out} ({seconds:.2f} s of audio)")
    return 0


def _ask(device: MqttProbe, text: str) -> Reply:
    """Send the intent and return the reply. Until konak-home's MCP session is up (a second
    or so after the hub starts) the hub has no route; the demo asks again then."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        intent = _turn(device, text)
        started = time.perf_counter()
        device.publish(intent.topic, intent.to_payload())
        got = device.next(timeout=READY_TIMEOUT_SECONDS)
        answer = decode(got.topic, got.payload)
        assert isinstance(answer, Reply)
        if answer.outcome != "no_route" or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # the hub's tools are still connecting
    _show("device -> hub", intent.topic, intent.to_payload())
    _show("hub -> device", got.topic, got.payload)
    print(f"   intent -> reply over the broker: {(time.perf_counter() - started) * 1000:.1f} ms")
    return answer


def speak(text: str, out: Path) -> float:
    """Synthesise ``text`` with the installed piper voice into ``out``; returns seconds."""
    import os

    from konak.edge_models.settings import ModelSettings
    from konak.edge_models.store import ModelStore

    settings = ModelSettings.resolve(
        models_dir=None, accept_licenses=(), environ=os.environ, config={}
    )
    voice_dir = ModelStore(settings.models_dir).path(VOICE_MODEL)
    onnx = next(voice_dir.glob("*.onnx"), None) if voice_dir.is_dir() else voice_dir
    if onnx is None:
        raise KonakError(f"no .onnx file in {voice_dir}", code="model_missing")
    from piper import PiperVoice

    voice = PiperVoice.load(onnx, config_path=onnx.with_name(onnx.name + ".json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(out), "wb") as wav:
        voice.synthesize_wav(text, wav)
        return wav.getnframes() / wav.getframerate()

"""``konak demo``: one voice turn across a real broker, on a machine with no sound card.

It starts a private Mosquitto, a device side and a hub side that speak only the wire
contract, and writes the spoken reply to a WAV file with the project's piper voice.
Until the daemon and hub land, the device side sends the intent a user's command would
produce, and the hub side answers it from a small table: what is shown is the contract,
the broker with per-device ACLs, the model store and the TTS voice.
"""

from __future__ import annotations

import argparse
import logging
import time
import uuid
import wave
from pathlib import Path
from typing import Final

from konak.devtools.mosquitto import AclRule, Mosquitto
from konak.devtools.probe import MqttProbe
from konak.errors import KonakError
from konak.protocol import Intent, Kind, Reply, Status, decode, device_acl, subscription

logger = logging.getLogger(__name__)

TENANT: Final = "demo"
DEVICE: Final = "kitchen-pi"
VOICE_MODEL: Final = "piper-en-us-joe-medium"
ANSWERS: Final = {
    "HassTurnOn": "Turned on the {name}.",
    "HassTurnOff": "Turned off the {name}.",
}


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``demo`` options."""
    parser.add_argument("--out", type=Path, default=Path("out/reply.wav"), help="reply WAV")
    parser.add_argument("--text", default="turn on the kitchen light", help="the command")
    parser.set_defaults(handler=run)


def _show(direction: str, topic: str, payload: bytes) -> None:
    print(f"  {direction:<14} {topic}\n  {'':<14} {payload.decode()}")


def run(args: argparse.Namespace) -> int:
    """Run one turn and write the reply to ``args.out``."""
    with Mosquitto() as broker:
        print(f"1. Mosquitto {broker.host}:{broker.port} (auth on, per-device ACL)")
        device_login = broker.add_user(
            f"{TENANT}.{DEVICE}",
            acl=[AclRule(access, topic) for access, topic in device_acl(TENANT, DEVICE)],
        )
        with (
            MqttProbe(broker.host, broker.port, broker.admin) as hub,
            MqttProbe(broker.host, broker.port, device_login) as device,
        ):
            hub.subscribe(subscription(Kind.STATUS))
            hub.subscribe(subscription(Kind.INTENT))
            device.subscribe(subscription(Kind.REPLY, tenant=TENANT, device=DEVICE))

            status = Status(tenant=TENANT, device=DEVICE, state="online", area="kitchen")
            device.publish(status.topic, status.to_payload(), retain=True)
            got = hub.next()
            _show("device -> hub", got.topic, got.payload)

            intent = Intent(
                tenant=TENANT,
                device=DEVICE,
                turn_id=uuid.uuid4().hex,
                text=args.text,
                intent="HassTurnOn",
                slots={"name": "kitchen light"},
                area="kitchen",
                speech_ended_at=time.time(),
            )
            print(f'2. The device recognised "{args.text}" and sends the intent (no audio):')
            started = time.perf_counter()
            device.publish(intent.topic, intent.to_payload())
            got = hub.next()
            _show("device -> hub", got.topic, got.payload)
            received = decode(got.topic, got.payload)
            assert isinstance(received, Intent)

            template = ANSWERS.get(received.intent or "", "I can't do that yet.")
            reply = Reply(
                tenant=received.tenant,
                device=received.device,
                turn_id=received.turn_id,
                text=template.format(**{k: str(v) for k, v in received.slots.items()}),
            )
            print("3. The hub answers on the device's reply topic:")
            hub.publish(reply.topic, reply.to_payload())
            got = device.next()
            _show("hub -> device", got.topic, got.payload)
            answer = decode(got.topic, got.payload)
            assert isinstance(answer, Reply)
            print(f"   round trip over the broker: {(time.perf_counter() - started) * 1000:.1f} ms")

    print("4. The device speaks the reply:")
    try:
        seconds = speak(answer.text, args.out)
    except KonakError as exc:
        print(f"   (not spoken: {exc.message}; run `make setup` to fetch the voice)")
        return 0
    print(f"   wrote {args.out} ({seconds:.2f} s of audio)")
    return 0


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

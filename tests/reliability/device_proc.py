"""One device of the reliability suite as its own process: the daemon's HubLink and outbox,
no audio. Reads ``<turn id> <expires_at|none>`` lines on stdin, queues each intent (the
``Record`` tool of the recorder) and answers ``queued <turn id>`` once it is on disk. SIGTERM
stops it as systemd would; a test SIGKILLs it to leave a queue behind.

Run as ``python device_proc.py '<json config>'``.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path


def _note(path: Path, message: object) -> None:
    """Append ``<epoch> <reply payload>`` for each reply received."""
    from konak.protocol import Reply

    if isinstance(message, Reply):
        with path.open("ab") as out:
            out.write(f"{time.time():.6f} ".encode() + message.to_payload() + b"\n")


def main() -> None:
    """Run the device until stdin closes or SIGTERM."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from konak.daemon.hublink import HubLink
    from konak.daemon.outbox import Outbox
    from konak.daemon.settings import DeviceSettings, HubLinkSettings
    from konak.protocol import Status
    from tests.reliability.rig import record_intent

    config = json.loads(sys.argv[1])
    device = config["device"]
    outbox = Outbox(Path(config["queue"]))
    settings = HubLinkSettings(
        host=config["host"],
        port=config["port"],
        username=config["username"],
        password=config["password"],
        reconnect_seconds=0.25,
        queue_path=Path(config["queue"]),
    )
    link = HubLink(
        DeviceSettings(config["tenant"], device),
        settings,
        outbox,
        lambda message: _note(Path(config["replies"]), message),
        lambda: Status(tenant=config["tenant"], device=device, state="online"),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    link.start()

    def read() -> None:
        for line in sys.stdin:
            turn_id, expires = line.split()
            expires_at = None if expires == "none" else float(expires)
            link.queue(record_intent(device, turn_id, expires_at))
            print("queued", turn_id, flush=True)
        stop.set()

    threading.Thread(target=read, daemon=True).start()
    stop.wait()
    link.stop()
    outbox.close()


if __name__ == "__main__":
    main()

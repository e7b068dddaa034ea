"""``konak broker run``: a private Mosquitto for development, stopped cleanly on Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from konak.devtools.mosquitto import Mosquitto


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``broker`` subcommands."""
    sub = parser.add_subparsers(dest="broker_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="start Mosquitto on a free loopback port until stopped")
    run.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    run.add_argument(
        "--credentials-file",
        type=Path,
        default=Path("out/broker.json"),
        help="where to write host, port and the admin login (mode 0600)",
    )
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    broker = Mosquitto()
    broker.port = args.port
    with broker:
        path: Path = args.credentials_file
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(
                {
                    "host": broker.host,
                    "port": broker.port,
                    "username": broker.admin.username,
                    "password": broker.admin.password,
                },
                out,
            )
        print(f"mosquitto on {broker.host}:{broker.port}; login in {path} (Ctrl-C stops it)")
        stop.wait()
    print("mosquitto stopped")
    return 0

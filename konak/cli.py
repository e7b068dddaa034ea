"""``konak``: the project's one command. Each component registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Final

from konak import __version__
from konak.errors import KonakError

logger = logging.getLogger(__name__)

# Subcommand -> module with ``register(subparsers)``. Imported lazily so a device
# without hub extras can still run ``konak daemon`` and ``konak models``.
COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "daemon": ("konak.daemon.cli", "the device daemon: run, transcribe, say, enroll"),
    "hub": ("konak.hub.cli", "the hub: run"),
    "models": ("konak.edge_models.cli", "models: pull, list, verify, path, quantize, bench"),
    "protocol": ("konak.protocol.cli", "the wire contract: JSON Schemas, decode a payload"),
    "broker": ("konak.devtools.cli", "run a local Mosquitto for development"),
    "bench": ("konak.bench.cli", "measure models and the hub; write bench/results.*"),
    "demo": ("konak.devtools.demo", "run the local demo of a whole voice turn"),
}

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every component's subcommands."""
    parser = argparse.ArgumentParser(prog="konak", description="Konak voice platform")
    parser.add_argument("--version", action="version", version=f"konak {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default INFO)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, summary) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            # A missing optional extra: show the command, explain when it is used.
            sub = subparsers.add_parser(name, help=f"{summary} (unavailable: {exc.name})")
            sub.set_defaults(handler=_unavailable(name, exc))
            continue
        module.register(subparsers.add_parser(name, help=summary, description=summary))
    return parser


def _unavailable(name: str, exc: ImportError) -> Handler:
    def handler(_: argparse.Namespace) -> int:
        print(
            f"konak {name}: needs the Python package {exc.name!r}, which is not installed "
            "(install the matching extra, e.g. pip install 'konak[device]' or 'konak[hub]')",
            file=sys.stderr,
        )
        return 2

    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``konak`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except KonakError as exc:
        print(f"konak {args.command}: {exc.message} [{exc.code}]", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

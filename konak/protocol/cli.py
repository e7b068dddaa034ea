"""``konak protocol``: write the generated docs, or decode a payload to check it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from konak.protocol.codec import decode
from konak.protocol.schema import write_docs


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``protocol`` subcommands."""
    sub = parser.add_subparsers(dest="protocol_command", metavar="ACTION", required=True)
    docs = sub.add_parser("docs", help="write docs/protocol.md and the JSON Schemas")
    docs.add_argument("--out", type=Path, default=Path("docs"), help="docs directory")
    docs.set_defaults(handler=_docs)
    check = sub.add_parser("decode", help="validate a payload (stdin) received on TOPIC")
    check.add_argument("topic")
    check.set_defaults(handler=_decode)


def _docs(args: argparse.Namespace) -> int:
    for path in write_docs(args.out):
        print(path)
    return 0


def _decode(args: argparse.Namespace) -> int:
    msg = decode(args.topic, sys.stdin.buffer.read())  # ProtocolError -> one line, exit 1
    print(msg.model_dump_json(indent=2))
    return 0

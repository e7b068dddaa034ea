"""Structured logs: one JSON object per line to stdout and, optionally, to a file."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Final

_STANDARD: Final = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# Libraries that log request URLs (a query string can hold a secret), tool arguments or MCP
# session ids at INFO or DEBUG: only their warnings reach the hub's log, at any level.
QUIET_LOGGERS: Final = ("httpx", "httpx2", "httpcore", "httpcore2", "mcp.client.streamable_http")


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON: time, level, logger, message, exception and extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_file: Path | None = None) -> None:
    """Route every log record to stdout (and ``log_file``) as JSON lines."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)

"""Fixtures for the model store tests: a local HTTP server with Range support, manifests."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from konak.edge_models.manifest import Manifest, parse_manifest
from konak.edge_models.store import ModelStore


@dataclass
class FileServer:
    """What the fake upstream serves and what it was asked."""

    base_url: str
    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)  # one-shot: drop after N bytes
    ranges: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        path = self.path.lstrip("/")
        range_header = self.headers.get("Range")
        state.requests.append((path, range_header))
        body = state.files.get(path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        match = re.match(r"bytes=(\d+)-$", range_header or "")
        if match and state.ranges:
            start = int(match.group(1))
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        cut = state.cut_after.pop(path, None)
        if cut is None:
            self.wfile.write(payload)
            return
        self.wfile.write(payload[:cut])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: FileServer


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = _Server(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    server.state = FileServer(base_url=f"http://{host!s}:{port}")
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server.state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


class Tools:
    """Helpers for building manifests (a fixture, since test modules cannot import conftest)."""

    @staticmethod
    def sha(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    @staticmethod
    def model_entry(
        files: dict[str, bytes],
        sources: list[dict[str, Any]],
        *,
        license_id: str = "MIT",
        commercial: bool = True,
        role: str = "vad",
    ) -> dict[str, Any]:
        """A raw manifest entry for ``files`` (name -> content)."""
        return {
            "role": role,
            "engine": "test",
            "language": "und",
            "license": license_id,
            "commercial_use": commercial,
            "targets": ["cpu"],
            "files": [
                {"path": n, "sha256": Tools.sha(b), "size": len(b)} for n, b in files.items()
            ],
            "sources": sources,
        }

    @staticmethod
    def manifest_of(
        models: dict[str, dict[str, Any]], sets: dict[str, list[str]] | None = None
    ) -> Manifest:
        return parse_manifest(
            {
                "schema_version": 2,
                "models": models,
                "sets": {k: {"models": v} for k, v in (sets or {}).items()},
            },
            "test",
        )

    @staticmethod
    def closed_port_url() -> str:
        """A loopback URL where nothing listens (connection refused at once)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return f"http://127.0.0.1:{port}"


@pytest.fixture
def tools() -> type[Tools]:
    return Tools

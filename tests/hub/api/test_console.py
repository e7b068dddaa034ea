"""The hub serves the built console: pages fall back to index.html, assets are cached, every
answer carries the CSP, nothing outside the dist folder is ever served, and an unbuilt
console is a one-line page saying how to build it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from konak.devtools.mosquitto import free_port
from konak.hub.api.console import CSP, setup_console
from konak.hub.api.routes import setup_api
from konak.hub.app import create_app
from konak.hub.settings import HubSettings, MqttSettings
from tests.hub.api.conftest import auth_settings

INDEX = "<!doctype html><div id=root></div><script src=/assets/app-1a2b.js></script>"
SECRET = "the hub's own secret"

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """A built console beside a file it must never serve."""
    (tmp_path / "secret.txt").write_text(SECRET)
    root = tmp_path / "console_dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "favicon.ico").write_bytes(b"\x00\x01")
    (root / "assets" / "app-1a2b.js").write_text("console.log('konak')")
    (root / "assets" / "escape.js").symlink_to(tmp_path / "secret.txt")
    return root


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[[Path], Any]]:
    clients: list[Client] = []

    async def start(root: Path) -> Client:
        app = web.Application()
        setup_api(app, HubSettings(database_path=tmp_path / "hub.sqlite3", auth=auth_settings()))
        setup_console(app, root)
        client: Client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


async def test_every_page_is_the_single_page_app_with_the_csp(serve: Any, dist: Path) -> None:
    client = await serve(dist)
    for path in ("/", "/fleet", "/devices/kitchen-pi", "/reset-password?token=abc"):
        resp = await client.get(path)
        assert resp.status == 200, path
        assert await resp.text() == INDEX
        assert resp.headers["Content-Security-Policy"] == CSP
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Cache-Control"] == "no-cache"
    icon = await client.get("/favicon.ico")
    assert await icon.read() == b"\x00\x01"


async def test_assets_are_cached_for_a_year_and_a_missing_one_is_a_404(
    serve: Any, dist: Path
) -> None:
    client = await serve(dist)

    asset = await client.get("/assets/app-1a2b.js")
    missing = await client.get("/assets/app-0000.js")

    assert asset.status == 200
    assert await asset.text() == "console.log('konak')"
    assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert asset.headers["Content-Security-Policy"] == CSP
    assert missing.status == 404


@pytest.mark.parametrize(
    "path",
    [
        "/assets/../../secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/assets/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/assets/....//....//secret.txt",
        "/assets/..%5c..%5csecret.txt",
        "/assets/%00",
        "/assets//etc/passwd",
        "/assets/escape.js",
        "/assets/",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
    ],
)
async def test_no_path_reaches_a_file_outside_the_dist_folder(
    serve: Any, dist: Path, path: str
) -> None:
    client = await serve(dist)

    resp = await client.get(path)
    body = await resp.text()

    assert SECRET not in body
    assert resp.status in (200, 400, 404)
    assert resp.status != 500
    if resp.status == 200:
        assert body == INDEX  # a page path: the app, never a file


async def test_an_unbuilt_console_says_how_to_build_it(serve: Any, tmp_path: Path) -> None:
    client = await serve(tmp_path / "nothing-here")

    for path in ("/", "/fleet"):
        resp = await client.get(path)
        text = await resp.text()
        assert resp.status == 503
        assert "make console" in text
        assert len(text.strip().splitlines()) == 1
    assert (await client.get("/assets/app.js")).status == 404


async def test_the_api_and_the_hubs_own_paths_are_never_the_console(
    tmp_path: Path, dist: Path
) -> None:
    settings = HubSettings(
        database_path=tmp_path / "hub.sqlite3",
        mqtt=MqttSettings(host="127.0.0.1", port=free_port(), reconnect_seconds=5.0),
        auth=auth_settings(),
    )
    app = create_app(settings)
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    try:
        unknown_api = await client.get("/api/no-such-route")
        posted = await client.post("/api/no-such-route", json={})
        health = await client.get("/healthz")
        openapi = await client.get("/api/openapi.json")
        page = await client.get("/fleet")
    finally:
        await client.close()

    assert unknown_api.status == 404
    assert posted.status == 404
    assert health.content_type == "application/json"  # 503 here: no broker
    assert openapi.status == 200
    assert page.status in (200, 503)  # the real dist folder may or may not be built here
    assert page.headers["Content-Security-Policy"] == CSP

"""Fixtures of the web console tests: a real hub (broker, API, accounts), the built console
in front of it, and Debian's Chromium driven by Playwright; for the end-to-end scenarios, a
hub that enrols devices on a dynamic-security broker (``enrolling_site``) with the daemon
tests' real daemon and speech, and a hub that mails through aiosmtpd (``mailing_site``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from konak.devtools.mosquitto import Mosquitto, free_port
from konak.hub.keys import AUTH
from konak.hub.security.rbac import Role
from konak.hub.security.settings import ProvisioningSettings, SmtpSettings
from konak.hub.settings import HubSettings
from tests.hub.api.conftest import auth_settings
from tests.hub.api.test_password_reset import Inbox, smtp_server  # noqa: F401 (a fixture)
from tests.integration.daemon.conftest import (  # noqa: F401 (fixtures)
    device_config,
    models_dir,
    run_daemon,
    shared_engines,
    speech,
    voice,
)
from tests.integration.hub.conftest import RunningHub, hub_settings, start_hub

REPO = Path(__file__).resolve().parents[2]
CONSOLE = REPO / "console"
DIST = REPO / "konak" / "hub" / "console_dist"
VITE = CONSOLE / "node_modules" / "vite" / "bin" / "vite.js"
AXE = CONSOLE / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "docs" / "console"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "violet-harbour-engine-42"
WAIT_SECONDS = 30.0
USERS = {"admin@acme.test": Role.ADMIN, "viewer@acme.test": Role.READONLY}


@dataclass
class ConsoleSite:
    """Where the console answers, and the hub behind it."""

    url: str
    hub: RunningHub
    broker: Mosquitto


def _require_built() -> None:
    missing = [p for p in (DIST / "index.html", AXE, Path(CHROMIUM)) if not p.exists()]
    if missing:
        pytest.fail(
            "the console tests need `make console` and Debian's chromium; missing: "
            + ", ".join(str(p) for p in missing)
        )


async def _serves_console(url: str) -> bool:
    async with aiohttp.ClientSession() as http, http.get(url + "/fleet") as resp:
        return resp.status == 200 and '<div id="root">' in await resp.text()


@pytest.fixture
def console_broker() -> Iterator[Mosquitto]:
    with Mosquitto() as broker:
        yield broker


@pytest.fixture
async def site(console_broker: Mosquitto, tmp_path: Path) -> AsyncIterator[ConsoleSite]:
    """A hub with the API and two accounts; the console from the hub itself, or (a hub that
    does not serve it) from `vite preview`, which sends /api to the hub."""
    settings = dataclasses.replace(hub_settings(console_broker, tmp_path), auth=auth_settings())
    async for console in open_site(console_broker, settings):
        yield console


@pytest.fixture
async def enrolling_site(dynsec_broker: Mosquitto, tmp_path: Path) -> AsyncIterator[ConsoleSite]:
    """:func:`site` whose hub enrols devices: each gets its own login on a broker with the
    dynamic-security plugin, as in production."""
    admin = dynsec_broker.admin
    settings = dataclasses.replace(
        hub_settings(dynsec_broker, tmp_path),
        auth=auth_settings(),
        provisioning=ProvisioningSettings(
            enabled=True, username=admin.username, password=admin.password
        ),
    )
    async for console in open_site(dynsec_broker, settings):
        yield console


@pytest.fixture
async def mailing_site(
    console_broker: Mosquitto,
    tmp_path: Path,
    smtp_server: tuple[Inbox, int],  # noqa: F811 (the fixture imported above)
) -> AsyncIterator[tuple[ConsoleSite, Inbox]]:
    """:func:`site` whose hub sends its mail (invitations, reset links) to a real SMTP
    server (aiosmtpd, the password-reset tests' ``smtp_server``); the inbox it lands in."""
    inbox, port = smtp_server
    smtp = SmtpSettings(host="127.0.0.1", port=port, sender="hub@konak.test")
    settings = dataclasses.replace(
        hub_settings(console_broker, tmp_path), auth=auth_settings(smtp=smtp)
    )
    async for console in open_site(console_broker, settings):
        yield console, inbox


async def open_site(broker: Mosquitto, settings: HubSettings) -> AsyncIterator[ConsoleSite]:
    """Start a hub with ``settings`` and the console in front of it; stop both after."""
    _require_built()
    running = await start_hub(settings)
    try:
        async for console in _serve(running, broker):
            yield console
    finally:
        await running.stop()


async def _serve(running: RunningHub, broker: Mosquitto) -> AsyncIterator[ConsoleSite]:
    users = running.runner.app[AUTH].users
    for email, role in USERS.items():
        users.assign("acme", users.create_user(email, PASSWORD).user_id, role)
    hub_url = f"http://127.0.0.1:{running.http_port}"
    if await _serves_console(hub_url):
        yield ConsoleSite(hub_url, running, broker)
        return
    port = free_port()
    node = shutil.which("node") or "node"
    preview = await asyncio.create_subprocess_exec(
        *(node, str(VITE), "preview", "--host", "127.0.0.1", "--port", str(port), "--strictPort"),
        cwd=CONSOLE,
        env={**os.environ, "KONAK_HUB_URL": hub_url, "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    drain: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(_until_listening(preview, url), WAIT_SECONDS)
        drain = asyncio.create_task(_drain(preview))
        yield ConsoleSite(url, running, broker)
    finally:
        preview.terminate()
        await preview.wait()
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain


async def _until_listening(process: asyncio.subprocess.Process, url: str) -> None:
    """Vite prints the URL it serves once it listens."""
    assert process.stdout is not None
    while line := await process.stdout.readline():
        if url.encode() in line:
            return
    raise RuntimeError(f"vite preview exited with {await process.wait()}")


async def _drain(process: asyncio.subprocess.Process) -> None:
    """Keep reading its output so it never blocks on a full pipe."""
    assert process.stdout is not None
    while await process.stdout.readline():
        pass


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless."""
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile under the console's own Content Security Policy: a page
    that breaks it (an inline script, a style or a connection it forbids) fails the test."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    refused: list[str] = []
    ctx.on(
        "console",
        lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    yield ctx
    await ctx.close()
    assert refused == []


async def sign_in(page: Page, site: ConsoleSite, email: str) -> None:
    """Sign in through the login page and wait for the console's navigation."""
    await page.goto(site.url + "/login")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("navigation", name="Main").wait_for()


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    # A dialog or a toast fading in has no contrast yet: judge the page once it is still.
    await page.wait_for_function(
        """() => document.getAnimations().every(
            a => a.playState !== 'running' || a.effect?.getTiming().iterations === Infinity)""",
        timeout=10_000,
    )
    await page.evaluate(AXE.read_text())  # evaluated by the browser's debugger, not the page
    result = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "nodes": [(n["target"], n["failureSummary"]) for n in v["nodes"]][:5],
        }
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


async def screenshot(page: Page, name: str) -> None:
    """Save the page to docs/console/<name>.png (the README's pictures)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

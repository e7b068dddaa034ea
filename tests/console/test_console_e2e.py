"""The console's end-to-end scenarios in a real Chromium against a real hub: a daemon enrolled
with a claim token minted in the console comes online live and recognises a slot value
published from the voice config; a user invited from the console accepts the mailed link
and signs in; a readonly user's forged writes are refused by the API."""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from konak.devtools.probe import MqttProbe, ProbeError
from konak.hub.keys import AUTH
from konak.protocol import Intent, Kind, subscription
from tests.console.conftest import (
    PASSWORD,
    ConsoleSite,
    Inbox,
    screenshot,
    sign_in,
)
from tests.daemon.fakes import FedSource
from tests.hub.api.test_password_reset import MAIL_WAIT_SECONDS
from tests.integration.daemon.conftest import RunningDaemon, Speech
from tests.integration.hub.conftest import Device

pytestmark = pytest.mark.integration

WAIT_SECONDS = 60.0
CLI = [sys.executable, "-m", "konak.cli"]  # `konak`, as the console's command names it


async def mint_in_console(page: Page, site: ConsoleSite) -> list[str]:
    """Create a claim token on the Enrolment page; the enrol command it shows (once)."""
    await page.goto(site.url + "/enrolment")
    await page.get_by_role("button", name="Create token").click()
    dialog = page.get_by_role("dialog", name="Claim token created")
    token = await dialog.get_by_role("textbox", name="Claim token").input_value()
    command = shlex.split(await dialog.get_by_role("textbox", name="Enrol command").input_value())
    await dialog.get_by_role("button", name="Close").first.click()
    assert command[:3] == ["konak", "daemon", "enroll"]
    assert command[command.index("--token") + 1] == token
    return command


async def run_enrol_command(command: list[str], hub_url: str, creds: Path, **names: str) -> str:
    """Run the console's `konak daemon enroll` command with the operator's choices filled in:
    the hub at the test's port (its public URL is the configured one), the device's name and
    area, the credentials in the test's directory."""
    args = command[3:]
    options = dict(zip(args[::2], args[1::2], strict=True))
    options |= {"--hub": hub_url, "--credentials": str(creds)}
    options |= {f"--{key}": value for key, value in names.items()}
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "daemon",
        "enroll",
        *(part for pair in options.items() for part in pair),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), WAIT_SECONDS)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_a_daemon_enrolled_from_the_console_comes_online_and_hears_a_published_slot_value(
    enrolling_site: ConsoleSite,
    context: BrowserContext,
    run_daemon: RunningDaemon,
    speech: Speech,
    tmp_path: Path,
) -> None:
    site = enrolling_site
    # The fleet in a tab of its own (its own session), never reloaded: the enrolment, the
    # daemon coming online, the config it applies and what it hears all come live.
    fleet = await context.new_page()
    await sign_in(fleet, site, "admin@acme.test")
    await expect(fleet.get_by_role("status").filter(has_text="Live")).to_be_visible()
    page = await context.new_page()
    await sign_in(page, site, "admin@acme.test")
    command = await mint_in_console(page, site)
    hub_url = f"http://127.0.0.1:{site.hub.http_port}"
    creds = tmp_path / "credentials.json"
    said = await run_enrol_command(command, hub_url, creds, name="Kitchen Pi", area="kitchen")
    assert "enrolled as acme/kitchen-pi" in said

    row = fleet.get_by_role("row").filter(has=fleet.get_by_role("link", name="Kitchen Pi"))
    await expect(row).to_contain_text("Never seen")  # enrolled, not yet heard from
    await expect(row).to_contain_text("kitchen-pi")
    revision_cell = row.get_by_role("cell").last
    await expect(revision_cell).to_have_text("—")

    # The real daemon, on the login the enrolment issued (its own user on the broker).
    watcher = MqttProbe(site.broker.host, site.broker.port, site.broker.admin).connect()
    try:
        watcher.subscribe(subscription(Kind.INTENT))
        mic = FedSource()
        daemon, log = run_daemon(
            source=mic,
            broker=site.broker,
            device={"tenant": "acme", "device": "kitchen-pi", "area": "kitchen"},
            hub={"credentials_file": str(creds)},
        )
        assert daemon.settings.hub.username != site.broker.admin.username
        await expect(row).to_contain_text("Online", timeout=WAIT_SECONDS * 1000)
        await expect(row).to_contain_text("kitchen")
        await expect(row).not_to_contain_text("Not enrolled")
        before = daemon.engines.intents.recognize("turn on the porch light")
        assert before is None or before.slots.get("name") != "porch light"  # not a name yet

        await publish_a_name_from_the_console(page, site, "porch light")
        applied = await asyncio.to_thread(log.wait_for, lambda e: e.type == "config-applied")
        assert applied.data == {"revision": 1}
        await expect(revision_cell).to_have_text("1")

        mic.feed(speech(1.0, "Hey Jarvis,", 0.3, "turn on the porch light.", 1.5))
        got = await asyncio.to_thread(watcher.next, WAIT_SECONDS)
        intent = Intent.from_payload(got.payload)
        assert (intent.device, intent.intent, intent.slots) == (
            "kitchen-pi",
            "HassTurnOn",
            {"name": "porch light"},
        )
        await expect(row).to_contain_text("“turn on the porch light”")
        await expect(row).to_contain_text("HassTurnOn")
        await screenshot(fleet, "fleet-enrolled")
    finally:
        watcher.close()


async def publish_a_name_from_the_console(page: Page, site: ConsoleSite, name: str) -> None:
    """Add ``name`` to the `name` slot list on the Voice config page, save and publish."""
    await (
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Voice config").click()
    )
    await page.get_by_role("button", name="Add slot list").click()
    await page.get_by_label("List name").fill("name")
    await page.get_by_label("Values").fill(f"kitchen light\n{name}")
    await page.get_by_role("button", name="Add slot list").click()
    await page.get_by_label("List name").nth(1).fill("area")
    await page.get_by_label("Values").nth(1).fill("kitchen")
    await page.get_by_role("button", name="Save as a new revision").click()
    await expect(page.get_by_text("Saved as revision 1")).to_be_visible()
    await page.get_by_role("button", name="Publish revision 1").click()
    await expect(page.get_by_text("Revision 1 published to 1 device")).to_be_visible()


@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
async def test_a_user_invited_in_the_console_follows_the_mailed_link_and_signs_in(
    mailing_site: tuple[ConsoleSite, Inbox], browser: Browser, context: BrowserContext
) -> None:
    site, inbox = mailing_site
    page = await context.new_page()
    await sign_in(page, site, "admin@acme.test")
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    await page.get_by_label("E-mail").fill("new.operator@acme.test")
    await page.get_by_label("Role", exact=True).click(force=True)
    await page.locator(".ant-select-dropdown").get_by_title("Operator", exact=True).click()
    await page.get_by_role("button", name="Send invitation").click()
    await expect(
        page.get_by_text("An invitation is on its way to new.operator@acme.test")
    ).to_be_visible()
    mail = await asyncio.wait_for(inbox.next(), MAIL_WAIT_SECONDS + 5)
    assert mail["To"] == "new.operator@acme.test"
    body = mail.get_payload(decode=True)
    assert isinstance(body, bytes)
    link = re.search(r"http://\S+(/invitation\?token=\S+)", body.decode())
    assert link is not None, body

    invitee = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        other = await invitee.new_page()
        await other.goto(site.url + link.group(1))  # the hub's public URL is not the test's
        await expect(other.get_by_role("heading", name="Invitation")).to_be_visible()
        await expect(other.get_by_text("new.operator@acme.test")).to_be_visible()
        await expect(other.locator(".ant-descriptions")).to_contain_text("Operator")
        await other.get_by_label("New password", exact=True).fill("copper-meadow-signal-58")
        await other.get_by_label("Repeat the new password").fill("copper-meadow-signal-58")
        await other.get_by_role("button", name="Create account and join").click()
        await expect(other.get_by_role("navigation", name="Main")).to_be_visible()
        await other.get_by_role("button", name="Account menu of new.operator@acme.test").click()
        await other.get_by_role("menuitem", name="Sign out").click()
        await expect(other.get_by_role("heading", level=1, name="Sign in")).to_be_visible()
        await other.get_by_label("E-mail").fill("new.operator@acme.test")
        await other.get_by_label("Password").fill("copper-meadow-signal-58")
        await other.get_by_role("button", name="Sign in").click()
        await expect(other.get_by_role("heading", level=1, name="Fleet")).to_be_visible()
    finally:
        await invitee.close()
    await page.reload()
    member = page.get_by_role("row").filter(has_text="new.operator@acme.test")
    await expect(member).to_have_count(1)


FORGED = (
    ("PUT", "voice-config", {"base_revision": 0, "language": "en", "sentences": {},
                             "slot_lists": {"name": ["back door"]}, "wake_words": []}),
    ("POST", "claims", {}),
    ("POST", "users", {"email": "mallory@acme.test", "role": "admin"}),
    ("POST", "announce", {"text": "the back door is open", "device": "kitchen-pi"}),
    ("DELETE", "devices/kitchen-pi", None),
)  # fmt: skip


async def test_a_readonly_user_is_offered_no_write_and_the_api_refuses_forged_ones(
    site: ConsoleSite, context: BrowserContext
) -> None:
    pi = Device(site.broker, "acme", "kitchen-pi")
    try:
        await pi.online(area="kitchen", name="Kitchen Pi")
        granted = await asyncio.to_thread(
            pi.probe.subscribe, subscription(Kind.CMD, tenant="acme", device="kitchen-pi")
        )
        assert not granted[0].is_failure
        page = await context.new_page()
        await sign_in(page, site, "viewer@acme.test")
        await page.get_by_role("link", name="Kitchen Pi").click()
        main = page.get_by_role("main")
        await expect(main.get_by_role("heading", level=1)).to_contain_text("kitchen-pi")
        await expect(main.get_by_role("heading", level=2, name="Telemetry")).to_be_visible()
        await expect(main.get_by_role("button")).to_have_count(0)  # no announce, no revoke
        await expect(main.get_by_role("textbox")).to_have_count(0)
        await page.goto(site.url + "/voice")
        await expect(main.get_by_role("heading", level=2, name="Revisions")).to_be_visible()
        await expect(main.get_by_role("button")).to_have_count(0)
        # The viewer signs in by hand in the same page and sends what the console never offers.
        answers: list[dict[str, Any]] = await page.evaluate(
            """async ([email, password, writes]) => {
                const login = await fetch('/api/auth/login', {method: 'POST',
                    headers: {'Content-Type': 'application/json'},
                    body: JSON.stringify({email, password})});
                const token = (await login.json()).access_token;
                const answers = [];
                for (const [method, path, body] of writes) {
                    const resp = await fetch('/api/tenants/acme/' + path, {method,
                        headers: {'Content-Type': 'application/json',
                                  'Authorization': 'Bearer ' + token},
                        body: body === null ? undefined : JSON.stringify(body)});
                    answers.push({status: resp.status, body: await resp.text()});
                }
                return answers;
            }""",
            ["viewer@acme.test", PASSWORD, [list(w) for w in FORGED]],
        )
        assert [a["status"] for a in answers] == [403] * len(FORGED), answers
        assert site.hub.runner.app[AUTH].users.by_email("mallory@acme.test") is None
        with pytest.raises(ProbeError):  # the device heard no announcement
            await asyncio.to_thread(pi.probe.next, 2.0)
        await page.reload()
        await expect(main.get_by_role("heading", level=2, name="Revisions")).to_be_visible()
        await expect(main.get_by_text("No revisions yet")).to_be_visible()
    finally:
        pi.close()

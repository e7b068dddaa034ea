"""The web console in a real Chromium against a real hub: sign in, the fleet, every page
free of serious accessibility violations, the language switch, a readonly user's view."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from playwright.async_api import BrowserContext, expect

from konak.protocol import Telemetry
from tests.console.conftest import (
    CONSOLE,
    PASSWORD,
    ConsoleSite,
    screenshot,
    serious_violations,
    sign_in,
)
from tests.integration.hub.conftest import Device

pytestmark = pytest.mark.integration

# Every page of the console an admin reaches from the navigation, by its heading.
PAGES = {
    "fleet": "Fleet",
    "voice": "Voice config",
    "enrolment": "Enrolment",
    "users": "Users",
    "mcp": "MCP servers",
    "audit": "Audit log",
    "alerts": "Alerts",
}


async def test_the_login_page_has_no_serious_accessibility_violation(
    site: ConsoleSite, context: BrowserContext
) -> None:
    page = await context.new_page()
    await page.goto(site.url + "/")
    await expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()
    assert await serious_violations(page) == []
    await screenshot(page, "login")


async def test_an_admin_signs_in_sees_the_fleet_and_every_page_passes_axe(
    site: ConsoleSite, context: BrowserContext
) -> None:
    page = await context.new_page()
    await sign_in(page, site, "admin@acme.test")
    await expect(page).to_have_url(re.compile(r"/fleet$"))
    await expect(page.get_by_role("heading", level=1, name="Fleet")).to_be_visible()
    found = {}
    for path, heading in PAGES.items():
        await page.get_by_role("navigation", name="Main").get_by_role("link", name=heading).click()
        await expect(page.get_by_role("heading", level=1, name=heading)).to_be_visible()
        await expect(page.locator(".ant-spin-spinning")).to_have_count(0)
        found[path] = await serious_violations(page)
        await screenshot(page, path)
    assert found == {path: [] for path in PAGES}


async def test_the_language_switch_turns_the_console_turkish_and_is_remembered(
    site: ConsoleSite, context: BrowserContext
) -> None:
    page = await context.new_page()
    await sign_in(page, site, "admin@acme.test")
    # (the selected value covers the combobox input: Ant Design opens the list on either)
    await page.get_by_role("combobox", name="Console language").click(force=True)
    await page.locator(".ant-select-dropdown").get_by_title("Türkçe", exact=True).click()
    await expect(page.get_by_role("heading", level=1, name="Cihaz filosu")).to_be_visible()
    assert await page.evaluate("document.documentElement.lang") == "tr"
    await page.reload()
    await expect(page.get_by_role("heading", level=1, name="Cihaz filosu")).to_be_visible()
    assert await serious_violations(page) == []
    await screenshot(page, "tr-fleet")
    turkish = json.loads((CONSOLE / "src" / "i18n" / "tr.json").read_text())
    for path in ("voice", "users"):
        heading = turkish[path]["title"]
        await page.goto(f"{site.url}/{path}")
        await expect(page.get_by_role("heading", level=1, name=heading)).to_be_visible()
        await expect(page.locator(".ant-spin-spinning")).to_have_count(0)
        assert await serious_violations(page) == []
        await screenshot(page, f"tr-{path}")


async def test_a_readonly_user_is_offered_no_write_page(
    site: ConsoleSite, context: BrowserContext
) -> None:
    page = await context.new_page()
    await sign_in(page, site, "viewer@acme.test")
    nav = page.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Fleet")).to_be_visible()
    for hidden in ("Enrolment", "Users", "MCP servers", "Audit log", "Tenants"):
        await expect(nav.get_by_role("link", name=hidden)).to_have_count(0)
    await page.goto(site.url + "/users")
    await expect(page.get_by_role("heading", level=1, name="Not available")).to_be_visible()


async def test_a_device_coming_online_appears_in_the_fleet_without_a_reload(
    site: ConsoleSite, context: BrowserContext
) -> None:
    page = await context.new_page()
    await sign_in(page, site, "admin@acme.test")
    await expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    pi = Device(site.broker, "acme", "kitchen-pi")
    try:
        await pi.online(area="kitchen", name="Kitchen Pi")
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name="Kitchen Pi"))
        await expect(row).to_contain_text("Online")
        await expect(row).to_contain_text("kitchen")
        await expect(row).to_contain_text("Not enrolled")
        assert await serious_violations(page) == []
        await screenshot(page, "fleet")
        for cpu in (12.5, 30.0):
            sample = Telemetry(
                tenant="acme",
                device="kitchen-pi",
                uptime_seconds=60,
                cpu_percent=cpu,
                rss_bytes=80_000_000,
                temperature_celsius=48.0,
                stage_latency_ms={"stt": 120.0, "intent": 4.0},
            )
            await asyncio.to_thread(pi.probe.publish, sample.topic, sample.to_payload(), 1, False)
        await row.get_by_role("link", name="Kitchen Pi").click()
        await expect(
            page.get_by_role("heading", level=1, name="Kitchen Pi (kitchen-pi)")
        ).to_be_visible()
        await expect(page.get_by_role("heading", level=2, name="Telemetry")).to_be_visible()
        await expect(page.get_by_role("figure", name="Stage latency")).to_be_visible()
        assert await serious_violations(page) == []
        await screenshot(page, "device")
    finally:
        pi.close()


async def test_an_admin_saves_a_voice_config_sees_a_bad_template_at_its_field_and_publishes(
    site: ConsoleSite, context: BrowserContext
) -> None:
    page = await context.new_page()
    await sign_in(page, site, "admin@acme.test")
    await page.goto(site.url + "/voice")
    await page.get_by_role("button", name="Add slot list").click()
    await page.get_by_label("List name").fill("room")
    await page.get_by_label("Values").fill("attic\ncellar")
    await page.get_by_role("button", name="Add intent").click()
    await page.get_by_label("Intent", exact=True).fill("HassTurnOn")
    templates = page.get_by_label("Templates")
    await templates.fill("turn on the light in the {room}")
    await page.get_by_role("button", name="Save as a new revision").click()
    await expect(page.get_by_text("Saved as revision 1")).to_be_visible()
    await templates.fill("turn on the light in the {room}\nturn on [the light")
    await page.get_by_role("button", name="Save as a new revision").click()
    # hassil's message, under the field it is about, naming the line
    await expect(templates).to_have_attribute("aria-invalid", "true")
    await expect(page.locator(".ant-form-item").filter(has=templates)).to_contain_text("line 2:")
    await page.get_by_role("button", name="Publish revision 1").click()
    await expect(page.get_by_text("Revision 1 published to 0 devices")).to_be_visible()
    assert await serious_violations(page) == []
    await screenshot(page, "voice")


async def test_a_readonly_user_sees_the_voice_config_without_a_field_or_button(
    site: ConsoleSite, context: BrowserContext
) -> None:
    page = await context.new_page()
    await sign_in(page, site, "viewer@acme.test")
    await page.goto(site.url + "/voice")
    main = page.get_by_role("main")
    await expect(main.get_by_role("heading", level=2, name="Revisions")).to_be_visible()
    await expect(main.get_by_role("textbox")).to_have_count(0)
    await expect(main.get_by_role("button")).to_have_count(0)


async def test_an_admin_mints_a_claim_token_shown_once_with_its_command_and_revokes_it(
    site: ConsoleSite, context: BrowserContext
) -> None:
    page = await context.new_page()
    await sign_in(page, site, "admin@acme.test")
    await page.goto(site.url + "/enrolment")
    await page.get_by_role("button", name="Create token").click()
    dialog = page.get_by_role("dialog", name="Claim token created")
    token = await dialog.get_by_role("textbox", name="Claim token").input_value()
    command = dialog.get_by_role("textbox", name="Enrol command")
    await expect(command).to_have_value(re.compile(r"konak daemon enroll .*--token " + token))
    await expect(dialog.get_by_role("button", name="Copy Claim token")).to_be_visible()
    await expect(page.locator(".ant-zoom-appear, .ant-zoom-enter")).to_have_count(0)  # faded in
    assert await serious_violations(page) == []
    await dialog.get_by_role("button", name="Close").first.click()
    row = page.get_by_role("row").filter(has_text="Unused")
    await expect(row).to_have_count(1)
    await screenshot(page, "enrolment")
    await row.get_by_role("button", name=re.compile("^Revoke claim token")).click()
    await page.get_by_role("tooltip").get_by_role("button", name="Revoke").click()
    await expect(page.get_by_role("row").filter(has_text="Expired")).to_have_count(1)
    assert token not in await page.content()


async def test_changing_the_password_signs_out_and_the_new_one_signs_in(
    site: ConsoleSite, context: BrowserContext
) -> None:
    page = await context.new_page()
    await sign_in(page, site, "viewer@acme.test")
    await page.get_by_role("button", name="Account menu of viewer@acme.test").click()
    await page.get_by_role("menuitem", name="Change password").click()
    dialog = page.get_by_role("dialog", name="Change your password")
    await dialog.get_by_label("Current password").fill(PASSWORD)
    await dialog.get_by_label("New password").fill("amber-lantern-river-77")
    await dialog.get_by_role("button", name="Change password").click()
    await expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()
    await page.get_by_label("E-mail").fill("viewer@acme.test")
    await page.get_by_label("Password").fill("amber-lantern-river-77")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("navigation", name="Main")).to_be_visible()

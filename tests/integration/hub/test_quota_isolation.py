"""Tenant quotas end to end: two tenants on the real broker, each with its own konak-home MCP
server over stdio; one floods the hub, the other is served as if it were alone."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from konak.devtools.mosquitto import Mosquitto
from konak.hub.quotas import LIMIT_TEXT, QuotaSettings, TenantQuota
from konak.hub.settings import TenantSettings
from konak.protocol import Intent

from .conftest import Device, ZigbeeLights, home_server, hub_settings

pytestmark = pytest.mark.integration

FLOOD = 8
A_PER_MINUTE = 2  # a token every 30 s: none comes back while the flood is answered


def _turn(tenant: str, device: str, turn_id: str) -> Intent:
    return Intent(
        tenant=tenant,
        device=device,
        turn_id=turn_id,
        text="turn on the kitchen light",
        intent="HassTurnOn",
        slots={"name": "kitchen light"},
    )


async def test_a_tenant_flooding_beyond_its_quota_gets_limit_replies_and_another_is_served(
    broker: Mosquitto,
    tmp_path: Path,
    hubs: Callable[..., Any],
    lights: ZigbeeLights,
    devices: Callable[..., Device],
) -> None:
    base = hub_settings(broker, tmp_path, (home_server(broker, tmp_path),))
    globex_home = tmp_path / "globex"
    globex_home.mkdir()
    settings = dataclasses.replace(
        base,
        tenants={
            "acme": base.tenants["acme"],
            "globex": TenantSettings("globex", mcp_servers=(home_server(broker, globex_home),)),
        },
        quotas=QuotaSettings(
            default=TenantQuota(intents_per_minute=60, max_concurrent_tool_calls=4),
            tenants={"acme": TenantQuota(intents_per_minute=A_PER_MINUTE)},
        ),
    )
    hub = await hubs(settings)
    flooder = devices("kitchen-pi", tenant="acme")
    neighbour = devices("hall-pi", tenant="globex")

    for n in range(FLOOD):
        await flooder.send(_turn("acme", "kitchen-pi", f"t-flood-{n:04d}"))
    flood = {r.turn_id: r for r in [await flooder.reply() for _ in range(FLOOD)]}
    # Only now, with acme over its quota and its bucket empty, globex speaks.
    served = []
    for n in range(3):
        await neighbour.send(_turn("globex", "hall-pi", f"t-calm-{n:04d}"))
        served.append(await neighbour.reply())
    await flooder.send(_turn("acme", "kitchen-pi", "t-flood-late"))
    late = await flooder.reply()

    outcomes = [flood[f"t-flood-{n:04d}"].outcome for n in range(FLOOD)]
    assert outcomes == ["ok"] * A_PER_MINUTE + ["limit"] * (FLOOD - A_PER_MINUTE)
    refused = [r for r in flood.values() if r.outcome == "limit"]
    assert {(r.text, r.speak) for r in refused} == {(LIMIT_TEXT, True)}
    assert [(r.turn_id, r.outcome) for r in served] == [(f"t-calm-{n:04d}", "ok") for n in range(3)]
    assert all(r.text == "Turned on the kitchen light." for r in served)
    assert (late.outcome, late.text) == ("limit", LIMIT_TEXT)  # B's turns gave A nothing
    # The exposition /metrics serves (which now asks for a scrape token), read in-process.
    metrics = generate_latest(hub.hub.metrics.registry).decode()
    rejected = FLOOD - A_PER_MINUTE + 1
    assert (
        f'konak_hub_quota_rejections_total{{quota="intents_per_minute",tenant="acme"}} '
        f"{float(rejected)}"
    ) in metrics
    assert 'tenant="globex"' not in "\n".join(
        line for line in metrics.splitlines() if line.startswith("konak_hub_quota_rejections")
    )

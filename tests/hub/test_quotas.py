"""Tenant quotas: their settings, the running counts, and a flooding tenant not slowing
another tenant's turns (the turn processor with a fake MCP host at its seam, a real SQLite
store)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.types import CallToolResult, TextContent

from konak.hub.arbitration import Arbiter
from konak.hub.errors import ConfigError
from konak.hub.mcp_host import ToolRef
from konak.hub.metrics import HubMetrics
from konak.hub.quotas import LIMIT_TEXT, Quotas, QuotaSettings, TenantQuota, parse_quotas
from konak.hub.settings import TenantSettings, parse_settings
from konak.hub.store import Store
from konak.hub.turns import TurnProcessor
from konak.protocol import Intent, Reply

WAIT_SECONDS = 10.0


class HeldHost:
    """Offers tool ``work`` to every tenant; acme's calls wait until ``release`` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.acme_running = 0
        self.acme_changed = asyncio.Condition()

    def find_tool(self, tenant: str, tool: str, server: str | None = None) -> ToolRef | None:
        return ToolRef("fake", tool, False) if tool == "work" else None

    async def wait_first_connect(self, tenant: str, timeout_seconds: float) -> bool:
        return False

    async def call(
        self, tenant: str, server: str, tool: str, arguments: dict[str, Any]
    ) -> CallToolResult:
        if tenant == "acme":
            async with self.acme_changed:
                self.acme_running += 1
                self.acme_changed.notify_all()
            await asyncio.wait_for(self.release.wait(), WAIT_SECONDS)
        return CallToolResult(content=[TextContent(type="text", text=f"{tenant} done.")])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def intent(tenant: str, n: int) -> Intent:
    return Intent(
        tenant=tenant, device="pi", turn_id=f"turn-{tenant}-{n:04d}", text="x", intent="work"
    )


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Any]:
    store = Store(tmp_path / "hub.sqlite3")
    replies: asyncio.Queue[Reply] = asyncio.Queue()
    metrics = HubMetrics()
    clock = Clock()
    quotas = QuotaSettings(
        default=TenantQuota(),
        tenants={"acme": TenantQuota(max_concurrent_tool_calls=2, intents_per_minute=30)},
    )
    host = HeldHost()

    async def publish(reply: Reply) -> None:
        await replies.put(reply)

    processor = TurnProcessor(
        store,
        host,
        Arbiter(0.01),
        metrics,
        publish,
        lambda: {t: TenantSettings(t) for t in ("acme", "globex")},
        Quotas(lambda: quotas, metrics, clock),
    )
    yield processor, host, replies, metrics, clock
    store.close()


async def next_reply(replies: asyncio.Queue[Reply]) -> Reply:
    return await asyncio.wait_for(replies.get(), WAIT_SECONDS)


async def test_a_flooding_tenant_gets_limit_replies_while_another_tenant_is_served(
    parts: Any,
) -> None:
    processor, host, replies, metrics, _ = parts
    flood = [asyncio.create_task(processor.handle(intent("acme", n))) for n in range(12)]
    async with asyncio.timeout(WAIT_SECONDS), host.acme_changed:
        await host.acme_changed.wait_for(lambda: host.acme_running == 2)
    limited = [await next_reply(replies) for _ in range(10)]
    assert {(r.tenant, r.outcome, r.text) for r in limited} == {("acme", "limit", LIMIT_TEXT)}

    await processor.handle(intent("globex", 1))  # acme's two calls are still held
    served = await next_reply(replies)
    assert (served.tenant, served.outcome, served.text) == ("globex", "ok", "globex done.")
    assert host.acme_running == 2

    host.release.set()
    await asyncio.gather(*flood)
    finished = [await next_reply(replies) for _ in range(2)]
    assert [(r.tenant, r.outcome) for r in finished] == [("acme", "ok"), ("acme", "ok")]
    rejected = {"tenant": "acme", "quota": "max_concurrent_tool_calls"}
    assert metrics.value("konak_hub_quota_rejections_total", rejected) == 10.0
    assert metrics.value("konak_hub_intents_total", {"outcome": "limit"}) == 10.0
    assert processor.quotas.running("acme") == 0


async def test_intents_over_the_minute_quota_get_a_limit_reply_until_the_bucket_refills(
    parts: Any,
) -> None:
    processor, host, replies, metrics, clock = parts
    host.release.set()
    for n in range(32):
        await processor.handle(intent("acme", n))
    outcomes = [(await next_reply(replies)).outcome for _ in range(32)]
    assert outcomes == ["ok"] * 30 + ["limit"] * 2
    await processor.handle(intent("globex", 1))
    assert (await next_reply(replies)).outcome == "ok"  # globex has no quota here
    clock.now += 2.0  # 30 a minute: one intent back every 2 s
    await processor.handle(intent("acme", 99))
    assert (await next_reply(replies)).outcome == "ok"
    rejected = {"tenant": "acme", "quota": "intents_per_minute"}
    assert metrics.value("konak_hub_quota_rejections_total", rejected) == 2.0


async def test_a_redelivered_turn_does_not_spend_the_quota(parts: Any) -> None:
    processor, host, replies, _, _ = parts
    host.release.set()
    for _ in range(40):
        await processor.handle(intent("acme", 1))
    answers = [await next_reply(replies) for _ in range(40)]
    assert [(r.outcome, r.repeat) for r in answers] == [("ok", False)] + [("ok", True)] * 39


def test_the_quotas_table_parses_with_per_tenant_overrides() -> None:
    settings = parse_settings(
        {
            "hub": {"database_path": "/tmp/x.sqlite3"},
            "quotas": {
                "max_concurrent_tool_calls": 4,
                "intents_per_minute": 60,
                "tenants": {"acme": {"max_devices": 3}},
            },
        }
    ).quotas
    assert settings.of("globex") == TenantQuota(4, 60, None)
    assert settings.of("acme") == TenantQuota(4, 60, 3)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"intents_per_minute": 0}, "must be >= 1"),
        ({"max_devices": -1}, "must be >= 1"),
        ({"max_devices": "3"}, "quotas.max_devices: must be an integer"),
        ({"max_devices": True}, "quotas.max_devices: must be an integer"),
        ({"max_tool_calls": 3}, "unknown key"),
        ({"tenants": ["acme"]}, "must be a table"),
        ({"tenants": {"acme": 3}}, "must be a table"),
        ({"tenants": {"acme": {"intents_per_minute": 1.5}}}, "must be an integer"),
    ],
)
def test_a_bad_quotas_table_is_refused_with_its_reason(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        parse_quotas(raw)


def test_slots_are_taken_all_or_none_and_given_back() -> None:
    metrics = HubMetrics()
    quota = QuotaSettings(TenantQuota(max_concurrent_tool_calls=3))
    quotas = Quotas(lambda: quota, metrics)
    assert quotas.start_calls("acme", 2)
    assert not quotas.start_calls("acme", 2)
    assert quotas.running("acme") == 2
    assert quotas.start_calls("globex", 3)
    quotas.end_calls("acme", 2)
    assert quotas.start_calls("acme", 3)

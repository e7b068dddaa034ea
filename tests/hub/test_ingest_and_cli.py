"""Ingest's validation (no broker needed for dispatch) and the ``konak hub`` command."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from konak.hub.ingest import Ingest
from konak.hub.metrics import HubMetrics
from konak.hub.settings import MqttSettings
from konak.protocol import Intent, Reply, Status, Telemetry
from tests.conftest import KonakMain, konak, one_error_line


class Recorder:
    """Collects what ingest hands on."""

    def __init__(self) -> None:
        self.statuses: list[Status] = []
        self.telemetry: list[Telemetry] = []
        self.intents: asyncio.Queue[Intent] = asyncio.Queue()

    async def on_intent(self, intent: Intent, claimed: Callable[[], None]) -> None:
        claimed()
        await self.intents.put(intent)


def _ingest(recorder: Recorder, metrics: HubMetrics) -> Ingest:
    return Ingest(
        MqttSettings(),
        metrics,
        on_status=recorder.statuses.append,
        on_telemetry=recorder.telemetry.append,
        on_intent=recorder.on_intent,
    )


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("konak/v1/acme/pi/intent", b"\xff\xfe", "malformed_json"),
        ("konak/v1/acme/pi/intent", b"[]", "not_an_object"),
        ("konak/v1/acme/pi/status", b'{"v": 9, "type": "status"}', "unknown_version"),
        (
            "konak/v1/acme/pi/status",
            b'{"v": 1, "type": "status", "tenant": "evil", "device": "pi", "state": "online"}',
            "topic_mismatch",
        ),
        ("konak/v1/acme/pi/nonsense", b"{}", "bad_topic"),
        ("konak/v1/ACME/pi/status", b"{}", "bad_topic"),
    ],
)
async def test_a_bad_message_is_dropped_and_counted_by_reason(
    topic: str, payload: bytes, reason: str
) -> None:
    recorder, metrics = Recorder(), HubMetrics()
    ingest = _ingest(recorder, metrics)

    ingest.dispatch(topic, payload)

    assert metrics.value("konak_hub_messages_dropped_total", {"reason": reason}) == 1
    assert recorder.statuses == []


async def test_a_hub_to_device_message_sent_to_the_hub_is_dropped() -> None:
    recorder, metrics = Recorder(), HubMetrics()
    reply = Reply(tenant="acme", device="pi", turn_id="t-1234567890", text="hi")

    _ingest(recorder, metrics).dispatch(reply.topic, reply.to_payload())

    assert metrics.value("konak_hub_messages_dropped_total", {"reason": "wrong_direction"}) == 1


async def test_valid_messages_reach_their_handlers() -> None:
    recorder, metrics = Recorder(), HubMetrics()
    ingest = _ingest(recorder, metrics)
    status = Status(tenant="acme", device="pi", state="online")
    intent = Intent(tenant="acme", device="pi", turn_id="t-1234567890", text="hi")

    ingest.dispatch(status.topic, status.to_payload())
    ingest.dispatch(intent.topic, intent.to_payload())

    assert recorder.statuses == [status]
    assert await asyncio.wait_for(recorder.intents.get(), 5) == intent
    assert metrics.value("konak_hub_messages_in_total", {"kind": "intent"}) == 1


@pytest.mark.expect_error_log(match=r"handling status from acme/pi failed")
async def test_a_failing_handler_is_counted_and_ingestion_continues() -> None:
    metrics = HubMetrics()

    def explode(_: Status) -> None:
        raise RuntimeError("boom")

    recorder = Recorder()
    ingest = Ingest(
        MqttSettings(),
        metrics,
        on_status=explode,
        on_telemetry=recorder.telemetry.append,
        on_intent=recorder.on_intent,
    )
    status = Status(tenant="acme", device="pi", state="online")
    telemetry = Telemetry(tenant="acme", device="pi", uptime_seconds=1, cpu_percent=1, rss_bytes=1)

    ingest.dispatch(status.topic, status.to_payload())
    ingest.dispatch(telemetry.topic, telemetry.to_payload())

    assert metrics.value("konak_hub_messages_dropped_total", {"reason": "handler_error"}) == 1
    assert recorder.telemetry == [telemetry]


def test_run_with_an_invalid_config_prints_one_line_and_exits_non_zero(
    tmp_path: Path, konak_main: KonakMain
) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[hub]\ndatabase_path = "x"\nhttp_port = "eighty"\n')

    line = one_error_line(konak_main("hub", "run", "--config", str(config)))

    assert line == (
        f"konak hub: {config}: hub.http_port: must be an integer, not string [config_invalid]"
    )


def test_check_config_accepts_a_valid_file(tmp_path: Path, konak_main: KonakMain) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(f'[hub]\ndatabase_path = "{tmp_path}/hub.sqlite3"\n')

    done = konak_main("hub", "check-config", "--config", str(config))

    assert done.returncode == 0
    assert "ok (0 tenant(s), 0 MCP server(s))" in done.stdout


def test_konak_home_refuses_a_bad_config_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "home.toml"
    config.write_text('[[entities]]\nname = "bad/name"\n')

    line = one_error_line(konak("--config", str(config), module="konak.hub.mcp_servers.home"))

    assert line == (
        f"konak-home: {config}: entities[0]: entity name 'bad/name' cannot be used in a topic"
    )

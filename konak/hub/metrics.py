"""Prometheus metrics of one hub instance (its own registry, so several hubs can coexist)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class HubMetrics:
    """The hub's counters, gauges and histograms."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.messages_in = Counter(
            "konak_hub_messages_in", "MQTT messages received", ["kind"], registry=r
        )
        self.messages_out = Counter(
            "konak_hub_messages_out", "MQTT messages published", ["kind"], registry=r
        )
        self.drops = Counter(
            "konak_hub_messages_dropped", "MQTT messages dropped, by reason", ["reason"], registry=r
        )
        self.intents = Counter(
            "konak_hub_intents", "Intents handled, by outcome", ["outcome"], registry=r
        )
        self.tool_seconds = Histogram(
            "konak_hub_tool_call_seconds",
            "MCP tool call latency",
            ["server", "result"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.devices_online = Gauge(
            "konak_hub_devices_online",
            "Devices whose last status was online",
            ["tenant"],
            registry=r,
        )
        self.quota_rejections = Counter(
            "konak_hub_quota_rejections",
            "Turns and enrolments refused by a tenant quota",
            ["tenant", "quota"],
            registry=r,
        )
        self.alerts = Counter("konak_hub_alerts", "Fleet alerts raised", ["kind"], registry=r)
        self.http_refused = Counter(
            "konak_hub_http_refused",
            "API requests refused before they proved an identity, by error code",
            ["code"],
            registry=r,
        )
        self.audit_suppressed = Counter(
            "konak_hub_audit_suppressed",
            "Audit records of anonymous or refused requests not written (over the cap)",
            registry=r,
        )
        self.turns = Counter(
            "konak_hub_device_turns",
            "Turns answered, per device and outcome (repeats not counted)",
            ["tenant", "device", "outcome"],
            registry=r,
        )
        self.intent_seconds = Histogram(
            "konak_hub_intent_seconds",
            "From an intent's arrival at the hub to its reply being sent",
            ["tenant"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.broker_connected = Gauge(
            "konak_hub_broker_connected", "1 while the hub's MQTT link is up", registry=r
        )
        self.circuit_open = Gauge(
            "konak_hub_mcp_circuit_open",
            "1 while an MCP server's circuit is open",
            ["tenant", "server"],
            registry=r,
        )

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value (0 when absent); for tests and the console."""
        got = self.registry.get_sample_value(name, labels or {})
        return 0.0 if got is None else got

"""The hub's settings: validated once from TOML into frozen dataclasses."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic import AliasPath, Field, SkipValidation, model_validator
from pydantic.dataclasses import dataclass

from konak.config import (
    SETTINGS,
    Bool,
    Float,
    Int,
    SettingError,
    load_toml,
    require,
    secrets,
    unknown_keys,
    validate,
)
from konak.errors import ConfigError
from konak.hub.knowledge.settings import KnowledgeSettings
from konak.hub.outbound import OutboundPolicy, parse_allow_rule
from konak.hub.quotas import QuotaSettings
from konak.hub.security.settings import AuthSettings, ProvisioningSettings
from konak.protocol.topics import is_identifier

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
MIN_METRICS_TOKEN_CHARS: Final = 16
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TEMPLATE_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The tables of hub.toml whose keys are fields of HubSettings itself.
_FLAT_TABLES: Final = {
    "hub": (
        "database_path",
        "http_host",
        "http_port",
        "log_level",
        "log_file",
        "stop_grace_seconds",
    ),
    "arbitration": ("window_seconds",),
}


@dataclass(frozen=True, slots=True, config=SETTINGS)
class MqttSettings:
    """How the hub reaches the broker."""

    host: str = "127.0.0.1"
    port: Int = 1883
    username: str = "konak-hub"
    password: str = field(default="", repr=False)
    client_id: str = "konak-hub"
    reconnect_seconds: Float = 2.0
    # A token bucket per device at ingest: messages beyond it are dropped and counted
    # (reason "rate_limited"), so one device cannot flood the hub for every tenant.
    device_message_burst: Int = 30
    device_messages_per_second: Float = 5.0
    # Turns running at once. Intents beyond it stay in the broker (unacknowledged, in the
    # hub's persistent session): also the MQTT v5 Receive Maximum the hub announces.
    max_turns_in_flight: Int = 512

    _secrets = secrets("password")

    def __post_init__(self) -> None:
        require(0 < self.port < 65536, f"mqtt.port {self.port} is not a TCP port")
        require(0 < self.max_turns_in_flight < 65536, "mqtt.max_turns_in_flight must be 1 to 65535")
        require(self.reconnect_seconds > 0, "mqtt.reconnect_seconds must be positive")
        require(self.device_message_burst >= 1, "mqtt.device_message_burst must be >= 1")
        require(self.device_messages_per_second > 0, "mqtt.device_messages_per_second > 0")


@dataclass(frozen=True, slots=True, config=SETTINGS)
class FleetSettings:
    """Fleet monitoring: offline alerts and telemetry retention."""

    offline_alert_seconds: Float = 300.0
    check_interval_seconds: Float = 5.0
    telemetry_retention_seconds: Float = 7 * 24 * 3600.0
    telemetry_max_rows_per_device: Int = 10_000
    webhook_url: str | None = None
    webhook_timeout_seconds: Float = 5.0
    # The same alert (kind) for the same device is raised at most once in this window, and
    # each tenant raises at most ``alerts_per_minute`` (a burst of that many); the rest are
    # dropped and counted, so a flapping device cannot flood the webhook.
    alert_repeat_seconds: Float = 300.0
    alerts_per_minute: Int = 10

    def __post_init__(self) -> None:
        for name in ("offline_alert_seconds", "check_interval_seconds", "webhook_timeout_seconds"):
            require(getattr(self, name) > 0, f"fleet.{name} must be positive")
        require(self.alert_repeat_seconds >= 0, "fleet.alert_repeat_seconds must be >= 0")
        require(self.alerts_per_minute >= 1, "fleet.alerts_per_minute must be >= 1")
        require(self.telemetry_retention_seconds > 0, "fleet.telemetry_retention_seconds > 0")
        require(self.telemetry_max_rows_per_device > 0, "fleet.telemetry_max_rows_per_device > 0")
        if self.webhook_url is not None:
            _check_url("fleet.webhook_url", self.webhook_url)


@dataclass(frozen=True, slots=True, config=SETTINGS)
class FleetMcpSettings:
    """konak-fleet, the hub's own MCP server over Streamable HTTP."""

    enabled: Bool = True
    host: str = "127.0.0.1"
    port: Int = 8381
    path: str = "/mcp"

    def __post_init__(self) -> None:
        require(0 <= self.port < 65536, f"fleet_mcp.port {self.port} is not a TCP port")
        require(self.path.startswith("/"), "fleet_mcp.path must start with '/'")


@dataclass(frozen=True, slots=True, config=SETTINGS)
class HttpSettings:
    """How the hub serves HTTP (``[http]``): TLS of its own, HSTS, and who may read /metrics."""

    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    hsts_seconds: Int = 365 * 24 * 3600  # sent only on responses served over TLS
    metrics_token: str = field(default="", repr=False)  # from metrics_token_env/_file

    _secrets = secrets("metrics_token", inline=False)

    def __post_init__(self) -> None:
        require(
            (self.tls_cert_file is None) == (self.tls_key_file is None),
            "http: give both tls_cert_file and tls_key_file, or neither",
        )
        require(self.hsts_seconds >= 0, "http.hsts_seconds must be >= 0")
        require(
            not self.metrics_token or len(self.metrics_token) >= MIN_METRICS_TOKEN_CHARS,
            f"http.metrics_token needs {MIN_METRICS_TOKEN_CHARS}+ characters",
        )

    @property
    def tls(self) -> bool:
        """Whether the hub serves HTTPS itself."""
        return self.tls_cert_file is not None


@dataclass(frozen=True, slots=True, config=SETTINGS)
class McpSettings:
    """``[mcp]``: where servers tenant admins add may be, beyond public addresses."""

    # Hosts, addresses or networks (each maybe with a port) tenants' servers may use although
    # they are loopback, private, link-local, ...: "10.0.0.5", "10.1.0.0/16", "mcp.internal:8080".
    allow_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for entry in self.allow_hosts:
            parse_allow_rule(entry)


@dataclass(frozen=True, slots=True, config=SETTINGS)
class McpServerSettings:
    """One MCP server of a tenant: a command over stdio or a URL over Streamable HTTP."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout_seconds: Float = 10.0
    retries: Int = 2
    read_only_tools: tuple[str, ...] = ()
    failure_threshold: Int = 3
    circuit_reset_seconds: Float = 30.0
    backoff_initial_seconds: Float = 0.5
    backoff_max_seconds: Float = 30.0
    # The address policy of a server a tenant added (None: hub.toml's, the operator's own).
    outbound: SkipValidation[OutboundPolicy | None] = None

    @model_validator(mode="before")
    @classmethod
    def _from_file(cls, data: Any) -> Any:
        """``pass_env`` hands the server the hub's variables by name; ``outbound`` is only
        for servers tenants add through the API."""
        if not isinstance(data, dict):
            return data
        if "outbound" in data:
            raise SettingError("outbound", "unknown key")
        data = dict(data)
        passed = data.pop("pass_env", [])
        if not isinstance(passed, list) or not all(isinstance(n, str) for n in passed):
            raise SettingError("pass_env", "must be a list of environment variable names")
        missing = [name for name in passed if name not in os.environ]
        if missing:
            raise SettingError("pass_env", f"environment variable {missing[0]!r} is not set")
        env = data.get("env", {})
        if passed and isinstance(env, dict):
            data["env"] = {**env, **{name: os.environ[name] for name in passed}}
        return data

    def __post_init__(self) -> None:
        where = f"mcp server {self.name!r}"
        require(bool(self.name), "an mcp server needs a name")
        require(
            (self.command is None) != (self.url is None),
            f"{where} needs exactly one of 'command' (stdio) or 'url' (Streamable HTTP)",
        )
        if self.url is not None:
            _check_url(f"{where} url", self.url)
        require(self.timeout_seconds > 0, f"{where}: timeout_seconds must be positive")
        require(self.retries >= 0, f"{where}: retries must be >= 0")
        require(self.failure_threshold >= 1, f"{where}: failure_threshold must be >= 1")
        require(self.circuit_reset_seconds > 0, f"{where}: circuit_reset_seconds must be > 0")
        require(
            0 < self.backoff_initial_seconds <= self.backoff_max_seconds,
            f"{where}: need 0 < backoff_initial_seconds <= backoff_max_seconds",
        )

    @property
    def transport(self) -> str:
        """``stdio`` or ``http``."""
        return "stdio" if self.command is not None else "http"


@dataclass(frozen=True, slots=True, config=SETTINGS)
class ToolCall:
    """One tool call of a binding; ``arguments`` are templates over the slots."""

    tool: str
    server: str | None = None
    arguments: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import string

        for key, template in self.arguments.items():
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
            except ValueError as exc:
                raise ConfigError(
                    f"tool {self.tool!r}: argument {key!r} is not a valid template: {exc}"
                ) from exc
            for name in fields:
                require(
                    _TEMPLATE_FIELD.fullmatch(name) is not None,
                    f"tool {self.tool!r}: argument {key!r}: placeholder {{{name}}} must be "
                    "a plain slot name",
                )


@dataclass(frozen=True, slots=True, config=SETTINGS)
class Binding:
    """An explicit intent -> tool route: one or more calls, run in parallel."""

    intent: str
    calls: tuple[ToolCall, ...]

    def __post_init__(self) -> None:
        require(bool(self.calls), f"binding {self.intent!r} has no tool calls")


@dataclass(frozen=True, slots=True, config=SETTINGS)
class TenantSettings:
    """What one tenant has configured: its MCP servers, bindings and konak-fleet token."""

    tenant_id: str
    mcp_servers: tuple[McpServerSettings, ...] = ()
    bindings: Mapping[str, Binding] = field(default_factory=dict)
    fleet_token_sha256: str | None = field(default=None, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _bindings(cls, data: Any) -> Any:
        """A binding is one tool (``tool = ...``) or several (``calls = [...]``)."""
        if not isinstance(data, dict) or not isinstance(data.get("bindings"), dict):
            return data
        bindings = {}
        for intent, spec in data["bindings"].items():
            if isinstance(spec, dict):
                calls = spec.get("calls", [spec])
                if "calls" in spec and len(spec) > 1:
                    raise SettingError(
                        f"bindings.{intent}", "give either 'calls' or one tool, not both"
                    )
                spec = {"intent": intent, "calls": calls}
            bindings[intent] = spec
        return {**data, "bindings": bindings}

    def __post_init__(self) -> None:
        require(is_identifier(self.tenant_id), f"invalid tenant id {self.tenant_id!r}")
        names = [s.name for s in self.mcp_servers]
        require(len(names) == len(set(names)), f"tenant {self.tenant_id}: duplicate server names")
        for binding in self.bindings.values():
            for call in binding.calls:
                require(
                    call.server is None or call.server in names,
                    f"tenant {self.tenant_id}: binding {binding.intent!r} names unknown server "
                    f"{call.server!r}",
                )
        if self.fleet_token_sha256 is not None:
            require(
                _SHA256.fullmatch(self.fleet_token_sha256) is not None,
                f"tenant {self.tenant_id}: fleet_token_sha256 must be 64 lowercase hex digits",
            )


@dataclass(frozen=True, slots=True, config=SETTINGS)
class HubSettings:
    """Everything the hub needs, parsed once at start-up."""

    database_path: Path = Field(validation_alias=AliasPath("hub", "database_path"))
    http_host: str = Field(default="127.0.0.1", validation_alias=AliasPath("hub", "http_host"))
    http_port: Int = Field(default=8380, validation_alias=AliasPath("hub", "http_port"))
    log_level: str = Field(default="INFO", validation_alias=AliasPath("hub", "log_level"))
    log_file: Path | None = Field(default=None, validation_alias=AliasPath("hub", "log_file"))
    arbitration_window_seconds: Float = Field(
        default=1.0, validation_alias=AliasPath("arbitration", "window_seconds")
    )
    # On SIGTERM: how long turns already running may take to finish (then they are failed).
    stop_grace_seconds: Float = Field(
        default=20.0, validation_alias=AliasPath("hub", "stop_grace_seconds")
    )
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    fleet: FleetSettings = field(default_factory=FleetSettings)
    fleet_mcp: FleetMcpSettings = field(default_factory=FleetMcpSettings)
    tenants: Mapping[str, TenantSettings] = field(default_factory=dict)
    auth: AuthSettings = field(default_factory=AuthSettings)
    provisioning: ProvisioningSettings = field(default_factory=ProvisioningSettings)
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    mcp: McpSettings = field(default_factory=McpSettings)
    knowledge: KnowledgeSettings = field(default_factory=KnowledgeSettings)

    @model_validator(mode="before")
    @classmethod
    def _from_file(cls, data: Any) -> Any:
        """Refuse unknown keys of ``[hub]`` and ``[arbitration]``; name each tenant."""
        if not isinstance(data, dict):
            return data
        unknown_keys(data, _FLAT_TABLES)
        data = dict(data)
        hub = data.get("hub")
        if isinstance(hub, dict) and hub.get("log_file") == "":
            data["hub"] = {k: v for k, v in hub.items() if k != "log_file"}
        tenants = data.get("tenants")
        if isinstance(tenants, dict):
            data["tenants"] = {
                tid: {**raw, "tenant_id": tid} if isinstance(raw, dict) else raw
                for tid, raw in tenants.items()
            }
        return data

    def __post_init__(self) -> None:
        require(0 <= self.http_port < 65536, f"hub.http_port {self.http_port} is not a TCP port")
        require(self.log_level in LOG_LEVELS, f"hub.log_level must be one of {LOG_LEVELS}")
        require(self.arbitration_window_seconds >= 0, "arbitration.window_seconds must be >= 0")
        require(self.stop_grace_seconds >= 0, "hub.stop_grace_seconds must be >= 0")


def _check_url(what: str, url: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"{what}: not a valid URL ({exc})") from exc
    require(parts.scheme in ("http", "https") and bool(parts.netloc), f"{what}: not an http URL")


def parse_settings(data: Mapping[str, Any]) -> HubSettings:
    """Build settings from a parsed TOML document; raises ConfigError with the reason."""
    return validate(dict(data), HubSettings)


def load_settings(path: Path) -> HubSettings:
    """Read and validate the hub's TOML configuration file."""
    return load_toml(path, HubSettings)

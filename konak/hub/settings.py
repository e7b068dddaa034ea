"""The hub's settings: parsed once from TOML into frozen dataclasses, validated on the way."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from konak.hub.auth.settings import (
    AuthSettings,
    ProvisioningSettings,
    parse_auth,
    parse_provisioning,
)
from konak.hub.errors import ConfigError
from konak.hub.outbound import OutboundPolicy, parse_allow_rule
from konak.hub.quotas import QuotaSettings, parse_quotas
from konak.protocol.topics import is_identifier

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
MIN_METRICS_TOKEN_CHARS: Final = 16
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TEMPLATE_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """How the hub reaches the broker."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str = "konak-hub"
    password: str = field(default="", repr=False)
    client_id: str = "konak-hub"
    reconnect_seconds: float = 2.0
    # A token bucket per device at ingest: messages beyond it are dropped and counted
    # (reason "rate_limited"), so one device cannot flood the hub for every tenant.
    device_message_burst: int = 30
    device_messages_per_second: float = 5.0
    # Turns running at once. Intents beyond it stay in the broker (unacknowledged, in the
    # hub's persistent session): also the MQTT v5 Receive Maximum the hub announces.
    max_turns_in_flight: int = 512

    def __post_init__(self) -> None:
        _check(0 < self.port < 65536, f"mqtt.port {self.port} is not a TCP port")
        _check(0 < self.max_turns_in_flight < 65536, "mqtt.max_turns_in_flight must be 1 to 65535")
        _check(self.reconnect_seconds > 0, "mqtt.reconnect_seconds must be positive")
        _check(self.device_message_burst >= 1, "mqtt.device_message_burst must be >= 1")
        _check(self.device_messages_per_second > 0, "mqtt.device_messages_per_second > 0")


@dataclass(frozen=True, slots=True)
class FleetSettings:
    """Fleet monitoring: offline alerts and telemetry retention."""

    offline_alert_seconds: float = 300.0
    check_interval_seconds: float = 5.0
    telemetry_retention_seconds: float = 7 * 24 * 3600.0
    telemetry_max_rows_per_device: int = 10_000
    webhook_url: str | None = None
    webhook_timeout_seconds: float = 5.0
    # The same alert (kind) for the same device is raised at most once in this window, and
    # each tenant raises at most ``alerts_per_minute`` (a burst of that many); the rest are
    # dropped and counted, so a flapping device cannot flood the webhook.
    alert_repeat_seconds: float = 300.0
    alerts_per_minute: int = 10

    def __post_init__(self) -> None:
        for name in ("offline_alert_seconds", "check_interval_seconds", "webhook_timeout_seconds"):
            _check(getattr(self, name) > 0, f"fleet.{name} must be positive")
        _check(self.alert_repeat_seconds >= 0, "fleet.alert_repeat_seconds must be >= 0")
        _check(self.alerts_per_minute >= 1, "fleet.alerts_per_minute must be >= 1")
        _check(self.telemetry_retention_seconds > 0, "fleet.telemetry_retention_seconds > 0")
        _check(self.telemetry_max_rows_per_device > 0, "fleet.telemetry_max_rows_per_device > 0")
        if self.webhook_url is not None:
            _check_url("fleet.webhook_url", self.webhook_url)


@dataclass(frozen=True, slots=True)
class FleetMcpSettings:
    """konak-fleet, the hub's own MCP server over Streamable HTTP."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8381
    path: str = "/mcp"

    def __post_init__(self) -> None:
        _check(0 <= self.port < 65536, f"fleet_mcp.port {self.port} is not a TCP port")
        _check(self.path.startswith("/"), "fleet_mcp.path must start with '/'")


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """How the hub serves HTTP (``[http]``): TLS of its own, HSTS, and who may read /metrics."""

    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    hsts_seconds: int = 365 * 24 * 3600  # sent only on responses served over TLS
    metrics_token: str = field(default="", repr=False)  # from metrics_token_env/_file

    def __post_init__(self) -> None:
        _check(
            (self.tls_cert_file is None) == (self.tls_key_file is None),
            "http: give both tls_cert_file and tls_key_file, or neither",
        )
        _check(self.hsts_seconds >= 0, "http.hsts_seconds must be >= 0")
        _check(
            not self.metrics_token or len(self.metrics_token) >= MIN_METRICS_TOKEN_CHARS,
            f"http.metrics_token needs {MIN_METRICS_TOKEN_CHARS}+ characters",
        )

    @property
    def tls(self) -> bool:
        """Whether the hub serves HTTPS itself."""
        return self.tls_cert_file is not None


@dataclass(frozen=True, slots=True)
class McpSettings:
    """``[mcp]``: where servers tenant admins add may be, beyond public addresses."""

    # Hosts, addresses or networks (each maybe with a port) tenants' servers may use although
    # they are loopback, private, link-local, ...: "10.0.0.5", "10.1.0.0/16", "mcp.internal:8080".
    allow_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for entry in self.allow_hosts:
            parse_allow_rule(entry)


@dataclass(frozen=True, slots=True)
class McpServerSettings:
    """One MCP server of a tenant: a command over stdio or a URL over Streamable HTTP."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout_seconds: float = 10.0
    retries: int = 2
    read_only_tools: tuple[str, ...] = ()
    failure_threshold: int = 3
    circuit_reset_seconds: float = 30.0
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    # The address policy of a server a tenant added (None: hub.toml's, the operator's own).
    outbound: OutboundPolicy | None = None

    def __post_init__(self) -> None:
        where = f"mcp server {self.name!r}"
        _check(bool(self.name), "an mcp server needs a name")
        _check(
            (self.command is None) != (self.url is None),
            f"{where} needs exactly one of 'command' (stdio) or 'url' (Streamable HTTP)",
        )
        if self.url is not None:
            _check_url(f"{where} url", self.url)
        _check(self.timeout_seconds > 0, f"{where}: timeout_seconds must be positive")
        _check(self.retries >= 0, f"{where}: retries must be >= 0")
        _check(self.failure_threshold >= 1, f"{where}: failure_threshold must be >= 1")
        _check(self.circuit_reset_seconds > 0, f"{where}: circuit_reset_seconds must be > 0")
        _check(
            0 < self.backoff_initial_seconds <= self.backoff_max_seconds,
            f"{where}: need 0 < backoff_initial_seconds <= backoff_max_seconds",
        )

    @property
    def transport(self) -> str:
        """``stdio`` or ``http``."""
        return "stdio" if self.command is not None else "http"


@dataclass(frozen=True, slots=True)
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
                _check(
                    _TEMPLATE_FIELD.fullmatch(name) is not None,
                    f"tool {self.tool!r}: argument {key!r}: placeholder {{{name}}} must be "
                    "a plain slot name",
                )


@dataclass(frozen=True, slots=True)
class Binding:
    """An explicit intent -> tool route: one or more calls, run in parallel."""

    intent: str
    calls: tuple[ToolCall, ...]

    def __post_init__(self) -> None:
        _check(bool(self.calls), f"binding {self.intent!r} has no tool calls")


@dataclass(frozen=True, slots=True)
class TenantSettings:
    """What one tenant has configured: its MCP servers, bindings and konak-fleet token."""

    tenant_id: str
    mcp_servers: tuple[McpServerSettings, ...] = ()
    bindings: Mapping[str, Binding] = field(default_factory=dict)
    fleet_token_sha256: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check(is_identifier(self.tenant_id), f"invalid tenant id {self.tenant_id!r}")
        names = [s.name for s in self.mcp_servers]
        _check(len(names) == len(set(names)), f"tenant {self.tenant_id}: duplicate server names")
        for binding in self.bindings.values():
            for call in binding.calls:
                _check(
                    call.server is None or call.server in names,
                    f"tenant {self.tenant_id}: binding {binding.intent!r} names unknown server "
                    f"{call.server!r}",
                )
        if self.fleet_token_sha256 is not None:
            _check(
                _SHA256.fullmatch(self.fleet_token_sha256) is not None,
                f"tenant {self.tenant_id}: fleet_token_sha256 must be 64 lowercase hex digits",
            )


@dataclass(frozen=True, slots=True)
class HubSettings:
    """Everything the hub needs, parsed once at start-up."""

    database_path: Path
    http_host: str = "127.0.0.1"
    http_port: int = 8380
    log_level: str = "INFO"
    log_file: Path | None = None
    arbitration_window_seconds: float = 1.0
    # On SIGTERM: how long turns already running may take to finish (then they are failed).
    stop_grace_seconds: float = 20.0
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    fleet: FleetSettings = field(default_factory=FleetSettings)
    fleet_mcp: FleetMcpSettings = field(default_factory=FleetMcpSettings)
    tenants: Mapping[str, TenantSettings] = field(default_factory=dict)
    auth: AuthSettings = field(default_factory=AuthSettings)
    provisioning: ProvisioningSettings = field(default_factory=ProvisioningSettings)
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    mcp: McpSettings = field(default_factory=McpSettings)

    def __post_init__(self) -> None:
        _check(0 <= self.http_port < 65536, f"hub.http_port {self.http_port} is not a TCP port")
        _check(self.log_level in LOG_LEVELS, f"hub.log_level must be one of {LOG_LEVELS}")
        _check(self.arbitration_window_seconds >= 0, "arbitration.window_seconds must be >= 0")
        _check(self.stop_grace_seconds >= 0, "hub.stop_grace_seconds must be >= 0")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_url(what: str, url: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"{what}: not a valid URL ({exc})") from exc
    _check(parts.scheme in ("http", "https") and bool(parts.netloc), f"{what}: not an http URL")


def _secret(table: Mapping[str, Any], key: str, where: str) -> str:
    """A secret given inline, through ``<key>_env`` (an environment variable) or
    ``<key>_file``; the environment and files keep secrets out of the config file."""
    if f"{key}_env" in table:
        name = table[f"{key}_env"]
        if name not in os.environ:
            raise ConfigError(f"{where}.{key}_env: environment variable {name!r} is not set")
        return os.environ[name]
    if f"{key}_file" in table:
        try:
            return Path(table[f"{key}_file"]).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}.{key}_file: cannot read it: {exc.strerror}") from exc
    return str(table.get(key, ""))


def _build(cls: type[Any], table: Mapping[str, Any], where: str, **extra: Any) -> Any:
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"[{where}]: unknown key(s) {', '.join(unknown)}")
    values = {**table, **extra}
    for name, value in values.items():
        expected = str(cls.__dataclass_fields__[name].type)
        if "float" in expected and isinstance(value, int) and not isinstance(value, bool):
            values[name] = float(value)
            continue
        _check_type(where, name, value, expected)
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"[{where}]: {exc}") from exc


def _check_type(where: str, name: str, value: Any, expected: str) -> None:
    simple = {"str": str, "int": int, "float": float, "bool": bool}
    base = expected.removesuffix(" | None")
    if value is None and expected.endswith("| None"):
        return
    if base in simple and (
        not isinstance(value, simple[base]) or (base != "bool" and isinstance(value, bool))
    ):
        raise ConfigError(f"[{where}] {name}: expected {base}, got {type(value).__name__}")


def _table(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table")
    return dict(value)


def _strings(where: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{where} must be a table of strings")
    return dict(value)


def _server(tenant: str, raw: Any) -> McpServerSettings:
    where = f"tenants.{tenant}.mcp_servers"
    if not isinstance(raw, dict):
        raise ConfigError(f"[[{where}]] entries must be tables")
    raw = dict(raw)
    env = _strings(f"{where}.env", raw.pop("env", {}))
    passed = raw.pop("pass_env", [])
    if not isinstance(passed, list) or not all(isinstance(n, str) for n in passed):
        raise ConfigError(f"{where}.pass_env must be a list of environment variable names")
    for name in passed:
        if name not in os.environ:
            raise ConfigError(f"{where}.pass_env: environment variable {name!r} is not set")
        env[name] = os.environ[name]
    headers = _strings(f"{where}.headers", raw.pop("headers", {}))
    if "outbound" in raw:
        raise ConfigError(f"[[{where}]]: unknown key(s) outbound")
    for key in ("args", "read_only_tools"):
        if key in raw:
            items = raw[key]
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ConfigError(f"{where}.{key} must be a list of strings")
            raw[key] = tuple(items)
    settings: McpServerSettings = _build(McpServerSettings, raw, where, env=env, headers=headers)
    return settings


def _tenant(tenant_id: str, raw: Any) -> TenantSettings:
    if not isinstance(raw, dict):
        raise ConfigError(f"[tenants.{tenant_id}] must be a table")
    unknown = sorted(set(raw) - {"mcp_servers", "bindings", "fleet_token_sha256"})
    if unknown:
        raise ConfigError(f"[tenants.{tenant_id}]: unknown key(s) {', '.join(unknown)}")
    servers = raw.get("mcp_servers", [])
    if not isinstance(servers, list):
        raise ConfigError(f"tenants.{tenant_id}.mcp_servers must be an array of tables")
    bindings: dict[str, Binding] = {}
    for intent, spec in _table(raw, "bindings").items():
        where = f"tenants.{tenant_id}.bindings.{intent}"
        if not isinstance(spec, dict):
            raise ConfigError(f"[{where}] must be a table")
        spec = dict(spec)
        raw_calls = spec.pop("calls", None)
        if raw_calls is None:
            raw_calls = [spec]
        elif spec:
            raise ConfigError(f"[{where}]: give either 'calls' or one tool, not both")
        if not isinstance(raw_calls, list) or not all(isinstance(c, dict) for c in raw_calls):
            raise ConfigError(f"{where}.calls must be an array of tables")
        calls = []
        for raw_call in raw_calls:
            call = dict(raw_call)
            arguments = _strings(f"{where}.arguments", call.pop("arguments", {}))
            calls.append(_build(ToolCall, call, where, arguments=arguments))
        bindings[intent] = Binding(intent=intent, calls=tuple(calls))
    token = raw.get("fleet_token_sha256")
    if token is not None and not isinstance(token, str):
        raise ConfigError(f"tenants.{tenant_id}.fleet_token_sha256 must be a string")
    return TenantSettings(
        tenant_id=tenant_id,
        mcp_servers=tuple(_server(tenant_id, s) for s in servers),
        bindings=bindings,
        fleet_token_sha256=token,
    )


def _http(raw: dict[str, Any]) -> HttpSettings:
    if "metrics_token" in raw:
        raise ConfigError("[http]: give metrics_token as metrics_token_env or metrics_token_file")
    token = _secret(raw, "metrics_token", "http")
    for key in ("metrics_token_env", "metrics_token_file"):
        raw.pop(key, None)
    for key in ("tls_cert_file", "tls_key_file"):
        if key in raw:
            if not isinstance(raw[key], str):
                raise ConfigError(f"[http] {key}: expected a path string")
            raw[key] = Path(raw[key])
    settings: HttpSettings = _build(HttpSettings, raw, "http", metrics_token=token)
    return settings


def _mcp(raw: dict[str, Any]) -> McpSettings:
    hosts = raw.get("allow_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ConfigError("[mcp] allow_hosts must be a list of strings")
    settings: McpSettings = _build(McpSettings, {**raw, "allow_hosts": tuple(hosts)}, "mcp")
    return settings


def parse_settings(data: Mapping[str, Any]) -> HubSettings:
    """Build settings from a parsed TOML document; raises ConfigError with the reason."""
    sections = {"hub", "mqtt", "fleet", "fleet_mcp", "arbitration", "tenants", "auth"}
    unknown = sorted(set(data) - sections - {"provisioning", "quotas", "http", "mcp"})
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)}")
    hub = _table(data, "hub")
    if "database_path" not in hub:
        raise ConfigError("[hub] database_path is required")
    mqtt_raw = _table(data, "mqtt")
    password = _secret(mqtt_raw, "password", "mqtt")
    for key in ("password", "password_env", "password_file"):
        mqtt_raw.pop(key, None)
    arbitration = _table(data, "arbitration")
    unknown = sorted(set(arbitration) - {"window_seconds"})
    if unknown:
        raise ConfigError(f"[arbitration]: unknown key(s) {', '.join(unknown)}")
    window = arbitration.get("window_seconds", 1.0)
    _check(
        isinstance(window, int | float) and not isinstance(window, bool),
        "[arbitration] window_seconds: expected a number",
    )
    hub_fields = {"http_host", "http_port", "log_level", "stop_grace_seconds"}
    unknown = sorted(set(hub) - hub_fields - {"database_path", "log_file"})
    if unknown:
        raise ConfigError(f"[hub]: unknown key(s) {', '.join(unknown)}")
    for key in ("database_path", "log_file"):
        if key in hub and not isinstance(hub[key], str):
            raise ConfigError(f"[hub] {key}: expected a path string")
    tenants = {tid: _tenant(tid, raw) for tid, raw in _table(data, "tenants").items()}
    settings: HubSettings = _build(
        HubSettings,
        {k: v for k, v in hub.items() if k in hub_fields},
        "hub",
        database_path=Path(hub["database_path"]),
        log_file=Path(hub["log_file"]) if hub.get("log_file") else None,
        arbitration_window_seconds=float(window),
        mqtt=_build(MqttSettings, mqtt_raw, "mqtt", password=password),
        fleet=_build(FleetSettings, _table(data, "fleet"), "fleet"),
        fleet_mcp=_build(FleetMcpSettings, _table(data, "fleet_mcp"), "fleet_mcp"),
        tenants=tenants,
        auth=parse_auth(_table(data, "auth"), _secret),
        provisioning=parse_provisioning(_table(data, "provisioning"), _secret),
        quotas=parse_quotas(_table(data, "quotas")),
        http=_http(_table(data, "http")),
        mcp=_mcp(_table(data, "mcp")),
    )
    return settings


def load_settings(path: Path) -> HubSettings:
    """Read and validate the hub's TOML configuration file."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "TOML files must be UTF-8"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return parse_settings(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from exc

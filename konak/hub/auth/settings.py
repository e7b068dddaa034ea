"""Settings of users, tokens, rate limits and enrolment: the ``[auth]`` and ``[provisioning]``
tables of hub.toml, parsed once into frozen dataclasses."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from konak.hub.errors import ConfigError

Algorithm = Literal["HS256", "EdDSA"]
ALGORITHMS: Final = ("HS256", "EdDSA")
MIN_HS256_SECRET_BYTES: Final = 32
ForwardedHeader = Literal["x-forwarded-for", "forwarded"]
FORWARDED_HEADERS: Final = ("x-forwarded-for", "forwarded")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One JWT signing key; ``secret`` for HS256, PEM keys for EdDSA (private optional: a
    retired key only verifies)."""

    kid: str
    algorithm: Algorithm
    secret: str = field(default="", repr=False)
    private_key_pem: str = field(default="", repr=False)
    public_key_pem: str = ""

    def __post_init__(self) -> None:
        _check(bool(self.kid), "auth.keys: every key needs a kid")
        _check(self.algorithm in ALGORITHMS, f"auth.keys.{self.kid}: algorithm not in {ALGORITHMS}")
        if self.algorithm == "HS256":
            _check(
                len(self.secret.encode()) >= MIN_HS256_SECRET_BYTES,
                f"auth.keys.{self.kid}: an HS256 secret needs {MIN_HS256_SECRET_BYTES}+ bytes",
            )
        else:
            _check(
                bool(self.public_key_pem or self.private_key_pem),
                f"auth.keys.{self.kid}: an EdDSA key needs private_key_file or public_key_file",
            )

    @property
    def can_sign(self) -> bool:
        """Whether this key holds the material to sign (not only verify)."""
        return bool(self.secret if self.algorithm == "HS256" else self.private_key_pem)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: ``burst`` requests at once, refilled at ``per_second``."""

    burst: int
    per_second: float

    def __post_init__(self) -> None:
        _check(self.burst >= 1 and self.per_second > 0, "auth rate limits need burst>=1, rate>0")


@dataclass(frozen=True, slots=True)
class LimitBackend:
    """Where the rate-limit buckets live (``[auth.rate_limits]``): this process
    (``memory``) or a Redis server that several hub workers share (``redis``)."""

    backend: Literal["memory", "redis"] = "memory"
    url: str = field(default="", repr=False)  # may carry credentials
    password: str = field(default="", repr=False)
    key_prefix: str = "konak:rl:"
    timeout_seconds: float = 2.0

    def __post_init__(self) -> None:
        _check(self.backend in ("memory", "redis"), "auth.rate_limits.backend: memory or redis")
        if self.backend == "redis":
            _check(
                self.url.startswith(("redis://", "rediss://", "unix://")),
                "auth.rate_limits.url must be a redis://, rediss:// or unix:// URL",
            )
        _check(self.timeout_seconds > 0, "auth.rate_limits.timeout_seconds must be positive")
        _check(bool(self.key_prefix), "auth.rate_limits.key_prefix must not be empty")


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where password-reset mail is sent from (``[auth.smtp]``); ``password`` comes from
    ``password_env`` or ``password_file``, never the file itself."""

    host: str
    port: int = 25
    sender: str = "konak@localhost"
    starttls: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        _check(bool(self.host), "auth.smtp.host must not be empty")
        _check(0 < self.port < 65536, "auth.smtp.port is not a TCP port")
        _check("@" in self.sender, "auth.smtp.from must be an e-mail address")
        _check(self.timeout_seconds > 0, "auth.smtp.timeout_seconds must be positive")


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Tokens, passwords and rate limits of the hub's JSON API."""

    keys: tuple[SigningKey, ...] = ()
    active_kid: str | None = None
    issuer: str = "konak-hub"
    access_token_seconds: float = 300.0
    refresh_token_seconds: float = 30 * 24 * 3600.0
    password_min_length: int = 12
    common_passwords_file: Path | None = None
    max_body_bytes: int = 64 * 1024
    ip_limit: RateLimit = field(default_factory=lambda: RateLimit(60, 10.0))
    user_limit: RateLimit = field(default_factory=lambda: RateLimit(120, 20.0))
    route_limits: Mapping[str, RateLimit] = field(default_factory=lambda: DEFAULT_ROUTE_LIMITS)
    # Mails to one address (reset links and invitations), whoever asks for them.
    mail_limit: RateLimit = field(default_factory=lambda: RateLimit(3, 1 / 1200))
    # Failed logins (and wrong current passwords) of one account from one client address.
    lockout_after_failures: int = 5
    lockout_initial_seconds: float = 30.0
    lockout_max_seconds: float = 3600.0
    # Failed logins of one account from every address together: a short wait, not a lock.
    slowdown_after_failures: int = 10
    slowdown_initial_seconds: float = 2.0
    slowdown_max_seconds: float = 30.0
    # Reverse proxies whose forwarding header names the client (addresses or networks).
    trusted_proxies: tuple[str, ...] = ()
    forwarded_header: ForwardedHeader = "x-forwarded-for"
    claim_token_seconds: float = 24 * 3600.0
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024
    smtp: SmtpSettings | None = None
    public_url: str = "http://127.0.0.1:8380"
    reset_token_seconds: float = 3600.0
    invitation_token_seconds: float = 7 * 24 * 3600.0
    limit_backend: LimitBackend = field(default_factory=LimitBackend)

    def __post_init__(self) -> None:
        kids = [k.kid for k in self.keys]
        _check(len(kids) == len(set(kids)), "auth.keys: duplicate kid")
        if self.keys:
            _check(self.active_kid in kids, "auth.active_kid must name one of auth.keys")
            active = next(k for k in self.keys if k.kid == self.active_kid)
            _check(active.can_sign, f"auth.keys.{active.kid}: the active key cannot sign")
        _check(self.access_token_seconds > 0, "auth.access_token_seconds must be positive")
        _check(self.refresh_token_seconds > 0, "auth.refresh_token_seconds must be positive")
        _check(self.password_min_length >= 8, "auth.password_min_length must be >= 8")
        _check(self.max_body_bytes >= 1024, "auth.max_body_bytes must be >= 1024")
        _check(self.lockout_after_failures >= 1, "auth.lockout_after_failures must be >= 1")
        _check(
            0 < self.lockout_initial_seconds <= self.lockout_max_seconds,
            "auth: need 0 < lockout_initial_seconds <= lockout_max_seconds",
        )
        _check(self.slowdown_after_failures >= 1, "auth.slowdown_after_failures must be >= 1")
        _check(
            0 < self.slowdown_initial_seconds <= self.slowdown_max_seconds,
            "auth: need 0 < slowdown_initial_seconds <= slowdown_max_seconds",
        )
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise ConfigError(f"auth.trusted_proxies: {proxy!r} is not an address") from exc
        _check(
            self.forwarded_header in FORWARDED_HEADERS,
            f"auth.forwarded_header must be one of {FORWARDED_HEADERS}",
        )
        _check(self.claim_token_seconds > 0, "auth.claim_token_seconds must be positive")
        _check(self.argon2_time_cost >= 1, "auth.argon2_time_cost must be >= 1")
        _check(self.argon2_memory_kib >= 64, "auth.argon2_memory_kib must be >= 64")
        _check(
            self.public_url.startswith(("http://", "https://")),
            "auth.public_url must be an http(s) URL",
        )
        _check(self.reset_token_seconds > 0, "auth.reset_token_seconds must be positive")
        _check(self.invitation_token_seconds > 0, "auth.invitation_token_seconds must be positive")

    @property
    def enabled(self) -> bool:
        """The JSON API is served only when signing keys are configured."""
        return bool(self.keys)


@dataclass(frozen=True, slots=True)
class ProvisioningSettings:
    """Device enrolment: the broker's dynamic-security admin and the address devices use."""

    enabled: bool = False
    username: str = "konak-provisioner"
    password: str = field(default="", repr=False)
    broker_host: str | None = None
    broker_port: int | None = None

    def __post_init__(self) -> None:
        if self.broker_port is not None:
            _check(0 < self.broker_port < 65536, "provisioning.broker_port is not a TCP port")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


# Per client address, on top of ``ip_limit``; hub.toml's ``[auth.route_limits]`` replaces
# these by name and adds others.
DEFAULT_ROUTE_LIMITS: Final[Mapping[str, RateLimit]] = {
    "login": RateLimit(10, 0.5),
    "password": RateLimit(10, 0.5),
    "password_reset": RateLimit(5, 0.05),
}


def _read(where: str, path: Any) -> str:
    if not isinstance(path, str):
        raise ConfigError(f"{where}: expected a path string")
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it: {exc.strerror}") from exc


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: expected a number")
    return float(value)


def _integer(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer")
    return value


def _limit(where: str, raw: Any) -> RateLimit:
    if not isinstance(raw, dict) or set(raw) != {"burst", "per_second"}:
        raise ConfigError(f"{where}: expected {{ burst = N, per_second = R }}")
    return RateLimit(_integer(f"{where}.burst", raw["burst"]), _number(where, raw["per_second"]))


def _key(kid: str, raw: Any, secret_of: Any) -> SigningKey:
    where = f"auth.keys.{kid}"
    if not isinstance(raw, dict):
        raise ConfigError(f"[{where}] must be a table")
    if "secret" in raw:
        raise ConfigError(f"[{where}]: give the secret as secret_env or secret_file")
    unknown = sorted(
        set(raw) - {"algorithm", "secret_env", "secret_file", "private_key_file", "public_key_file"}
    )
    if unknown:
        raise ConfigError(f"[{where}]: unknown key(s) {', '.join(unknown)}")
    algorithm = raw.get("algorithm", "HS256")
    _check(algorithm in ALGORITHMS, f"[{where}] algorithm must be one of {ALGORITHMS}")
    return SigningKey(
        kid=kid,
        algorithm=algorithm,
        secret=secret_of(raw, "secret", where) if algorithm == "HS256" else "",
        private_key_pem=_read(where, raw["private_key_file"]) if "private_key_file" in raw else "",
        public_key_pem=_read(where, raw["public_key_file"]) if "public_key_file" in raw else "",
    )


def parse_auth(raw: Mapping[str, Any], secret_of: Any) -> AuthSettings:
    """Build AuthSettings from the ``[auth]`` table; ``secret_of`` resolves ``*_env``/``*_file``."""
    raw = dict(raw)
    numbers = {
        "access_token_seconds",
        "refresh_token_seconds",
        "lockout_initial_seconds",
        "lockout_max_seconds",
        "claim_token_seconds",
        "reset_token_seconds",
        "invitation_token_seconds",
        "slowdown_initial_seconds",
        "slowdown_max_seconds",
    }
    integers = {"password_min_length", "max_body_bytes", "lockout_after_failures"}
    integers |= {"argon2_time_cost", "argon2_memory_kib", "slowdown_after_failures"}
    known = numbers | integers | {"keys", "active_kid", "issuer", "common_passwords_file"}
    known |= {"ip_limit", "user_limit", "route_limits", "smtp", "public_url", "rate_limits"}
    known |= {"mail_limit", "trusted_proxies", "forwarded_header"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"[auth]: unknown key(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name in numbers & set(raw):
        values[name] = _number(f"[auth] {name}", raw[name])
    for name in integers & set(raw):
        values[name] = _integer(f"[auth] {name}", raw[name])
    for name in ("active_kid", "issuer", "public_url", "forwarded_header"):
        if name in raw:
            if not isinstance(raw[name], str):
                raise ConfigError(f"[auth] {name}: expected str")
            values[name] = raw[name]
    if "common_passwords_file" in raw:
        path = raw["common_passwords_file"]
        _read("[auth] common_passwords_file", path)
        values["common_passwords_file"] = Path(path)
    keys = raw.get("keys", {})
    if not isinstance(keys, dict):
        raise ConfigError("[auth.keys] must be a table of keys by kid")
    values["keys"] = tuple(_key(kid, spec, secret_of) for kid, spec in keys.items())
    for name in ("ip_limit", "user_limit", "mail_limit"):
        if name in raw:
            values[name] = _limit(f"auth.{name}", raw[name])
    if "trusted_proxies" in raw:
        proxies = raw["trusted_proxies"]
        if not isinstance(proxies, list) or not all(isinstance(p, str) for p in proxies):
            raise ConfigError("[auth] trusted_proxies: expected a list of addresses")
        values["trusted_proxies"] = tuple(proxies)
    if "route_limits" in raw:
        routes = raw["route_limits"]
        if not isinstance(routes, dict):
            raise ConfigError("[auth.route_limits] must be a table")
        values["route_limits"] = {
            **DEFAULT_ROUTE_LIMITS,
            **{name: _limit(f"auth.route_limits.{name}", spec) for name, spec in routes.items()},
        }
    if "smtp" in raw:
        values["smtp"] = _smtp(raw["smtp"], secret_of)
    if "rate_limits" in raw:
        values["limit_backend"] = _backend(raw["rate_limits"], secret_of)
    return AuthSettings(**values)


def _backend(raw: Any, secret_of: Any) -> LimitBackend:
    if not isinstance(raw, dict):
        raise ConfigError("[auth.rate_limits] must be a table")
    if "password" in raw:
        raise ConfigError("[auth.rate_limits]: give the password as password_env or password_file")
    known = {"backend", "url", "password_env", "password_file", "key_prefix", "timeout_seconds"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"[auth.rate_limits]: unknown key(s) {', '.join(unknown)}")
    for name in ("backend", "url", "key_prefix"):
        if name in raw and not isinstance(raw[name], str):
            raise ConfigError(f"[auth.rate_limits] {name}: expected str")
    backend = raw.get("backend", "memory")
    _check(backend in ("memory", "redis"), "[auth.rate_limits] backend must be memory or redis")
    return LimitBackend(
        backend=backend,
        url=raw.get("url", ""),
        password=secret_of(raw, "password", "auth.rate_limits"),
        key_prefix=raw.get("key_prefix", "konak:rl:"),
        timeout_seconds=_number(
            "[auth.rate_limits] timeout_seconds", raw.get("timeout_seconds", 2.0)
        ),
    )


def _smtp(raw: Any, secret_of: Any) -> SmtpSettings:
    if not isinstance(raw, dict):
        raise ConfigError("[auth.smtp] must be a table")
    if "password" in raw:
        raise ConfigError("[auth.smtp]: give the password as password_env or password_file")
    known = {"host", "port", "from", "starttls", "username", "password_env", "password_file"}
    unknown = sorted(set(raw) - known - {"timeout_seconds"})
    if unknown:
        raise ConfigError(f"[auth.smtp]: unknown key(s) {', '.join(unknown)}")
    for name in ("host", "from", "username"):
        if name in raw and not isinstance(raw[name], str):
            raise ConfigError(f"[auth.smtp] {name}: expected str")
    if "host" not in raw:
        raise ConfigError("[auth.smtp] host is required")
    starttls = raw.get("starttls", False)
    if not isinstance(starttls, bool):
        raise ConfigError("[auth.smtp] starttls: expected bool")
    return SmtpSettings(
        host=raw["host"],
        port=_integer("[auth.smtp] port", raw.get("port", 25)),
        sender=raw.get("from", "konak@localhost"),
        starttls=starttls,
        username=raw.get("username", ""),
        password=secret_of(raw, "password", "auth.smtp"),
        timeout_seconds=_number("[auth.smtp] timeout_seconds", raw.get("timeout_seconds", 10.0)),
    )


def parse_provisioning(raw: Mapping[str, Any], secret_of: Any) -> ProvisioningSettings:
    """Build ProvisioningSettings from the ``[provisioning]`` table."""
    raw = dict(raw)
    known = {"enabled", "username", "password_env", "password_file", "broker_host", "broker_port"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"[provisioning]: unknown key(s) {', '.join(unknown)}")
    enabled = raw.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError("[provisioning] enabled: expected bool")
    for name in ("username", "broker_host"):
        if name in raw and not isinstance(raw[name], str):
            raise ConfigError(f"[provisioning] {name}: expected str")
    port = raw.get("broker_port")
    return ProvisioningSettings(
        enabled=enabled,
        username=raw.get("username", "konak-provisioner"),
        password=secret_of(raw, "password", "provisioning"),
        broker_host=raw.get("broker_host"),
        broker_port=None if port is None else _integer("[provisioning] broker_port", port),
    )

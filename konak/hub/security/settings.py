"""Settings of users, tokens, rate limits and enrolment: the ``[auth]`` and ``[provisioning]``
tables of hub.toml, validated once into frozen dataclasses."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass

from konak.config import (
    SETTINGS,
    Bool,
    Float,
    Int,
    SettingError,
    read_secret,
    require,
    secrets,
    take_secret,
)
from konak.config import validate as validate_table
from konak.errors import ConfigError

Algorithm = Literal["HS256", "EdDSA"]
ALGORITHMS: Final = ("HS256", "EdDSA")
MIN_HS256_SECRET_BYTES: Final = 32
ForwardedHeader = Literal["x-forwarded-for", "forwarded"]
FORWARDED_HEADERS: Final = ("x-forwarded-for", "forwarded")


@dataclass(frozen=True, slots=True, config=SETTINGS)
class SigningKey:
    """One JWT signing key; ``secret`` for HS256, PEM keys for EdDSA (private optional: a
    retired key only verifies)."""

    kid: str
    algorithm: Algorithm
    secret: str = field(default="", repr=False)
    private_key_pem: str = field(default="", repr=False)
    public_key_pem: str = ""

    @model_validator(mode="before")
    @classmethod
    def _files(cls, data: Any) -> Any:
        """``secret_env``/``secret_file`` (HS256), ``private_key_file``, ``public_key_file``."""
        if isinstance(data, dict):
            data = {"algorithm": "HS256", **data}
            if data["algorithm"] == "HS256":
                take_secret(data, "secret", inline=False)
            else:  # an EdDSA key has no shared secret
                data = {k: v for k, v in data.items() if k not in ("secret_env", "secret_file")}
            for kind in ("private", "public"):
                if f"{kind}_key_file" in data:
                    path = data.pop(f"{kind}_key_file")
                    data[f"{kind}_key_pem"] = read_secret(path, f"{kind}_key_file")
        return data

    def __post_init__(self) -> None:
        require(bool(self.kid), "auth.keys: every key needs a kid")
        require(
            self.algorithm in ALGORITHMS, f"auth.keys.{self.kid}: algorithm not in {ALGORITHMS}"
        )
        if self.algorithm == "HS256":
            require(
                len(self.secret.encode()) >= MIN_HS256_SECRET_BYTES,
                f"auth.keys.{self.kid}: an HS256 secret needs {MIN_HS256_SECRET_BYTES}+ bytes",
            )
        else:
            require(
                bool(self.public_key_pem or self.private_key_pem),
                f"auth.keys.{self.kid}: an EdDSA key needs private_key_file or public_key_file",
            )

    @property
    def can_sign(self) -> bool:
        """Whether this key holds the material to sign (not only verify)."""
        return bool(self.secret if self.algorithm == "HS256" else self.private_key_pem)


@dataclass(frozen=True, slots=True, config=SETTINGS)
class RateLimit:
    """A token bucket: ``burst`` requests at once, refilled at ``per_second``."""

    burst: Int
    per_second: Float

    def __post_init__(self) -> None:
        require(self.burst >= 1 and self.per_second > 0, "auth rate limits need burst>=1, rate>0")


@dataclass(frozen=True, slots=True, config=SETTINGS)
class LimitBackend:
    """Where the rate-limit buckets live (``[auth.rate_limits]``): this process
    (``memory``) or a Redis server that several hub workers share (``redis``)."""

    backend: Literal["memory", "redis"] = "memory"
    url: str = field(default="", repr=False)  # may carry credentials
    password: str = field(default="", repr=False)
    key_prefix: str = "konak:rl:"
    timeout_seconds: Float = 2.0

    _secrets = secrets("password", inline=False)

    def __post_init__(self) -> None:
        require(self.backend in ("memory", "redis"), "auth.rate_limits.backend: memory or redis")
        if self.backend == "redis":
            require(
                self.url.startswith(("redis://", "rediss://", "unix://")),
                "auth.rate_limits.url must be a redis://, rediss:// or unix:// URL",
            )
        require(self.timeout_seconds > 0, "auth.rate_limits.timeout_seconds must be positive")
        require(bool(self.key_prefix), "auth.rate_limits.key_prefix must not be empty")


@dataclass(frozen=True, slots=True, config=SETTINGS)
class SmtpSettings:
    """Where password-reset mail is sent from (``[auth.smtp]``); ``password`` comes from
    ``password_env`` or ``password_file``, never the file itself."""

    host: str
    port: Int = 25
    sender: str = Field(default="konak@localhost", validation_alias="from")
    starttls: Bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    timeout_seconds: Float = 10.0

    _secrets = secrets("password", inline=False)

    def __post_init__(self) -> None:
        require(bool(self.host), "auth.smtp.host must not be empty")
        require(0 < self.port < 65536, "auth.smtp.port is not a TCP port")
        require("@" in self.sender, "auth.smtp.from must be an e-mail address")
        require(self.timeout_seconds > 0, "auth.smtp.timeout_seconds must be positive")


@dataclass(frozen=True, slots=True, config=SETTINGS)
class AuthSettings:
    """Tokens, passwords and rate limits of the hub's JSON API."""

    keys: tuple[SigningKey, ...] = ()
    active_kid: str | None = None
    issuer: str = "konak-hub"
    access_token_seconds: Float = 300.0
    refresh_token_seconds: Float = 30 * 24 * 3600.0
    password_min_length: Int = 12
    common_passwords_file: Path | None = None
    max_body_bytes: Int = 64 * 1024
    ip_limit: RateLimit = field(default_factory=lambda: RateLimit(60, 10.0))
    user_limit: RateLimit = field(default_factory=lambda: RateLimit(120, 20.0))
    route_limits: Mapping[str, RateLimit] = field(default_factory=lambda: DEFAULT_ROUTE_LIMITS)
    # Mails to one address (reset links and invitations), whoever asks for them.
    mail_limit: RateLimit = field(default_factory=lambda: RateLimit(3, 1 / 1200))
    # Failed logins (and wrong current passwords) of one account from one client address.
    lockout_after_failures: Int = 5
    lockout_initial_seconds: Float = 30.0
    lockout_max_seconds: Float = 3600.0
    # Failed logins of one account from every address together: a short wait, not a lock.
    slowdown_after_failures: Int = 10
    slowdown_initial_seconds: Float = 2.0
    slowdown_max_seconds: Float = 30.0
    # Reverse proxies whose forwarding header names the client (addresses or networks).
    trusted_proxies: tuple[str, ...] = ()
    forwarded_header: ForwardedHeader = "x-forwarded-for"
    claim_token_seconds: Float = 24 * 3600.0
    argon2_time_cost: Int = 3
    argon2_memory_kib: Int = 64 * 1024
    smtp: SmtpSettings | None = None
    public_url: str = "http://127.0.0.1:8380"
    reset_token_seconds: Float = 3600.0
    invitation_token_seconds: Float = 7 * 24 * 3600.0
    limit_backend: LimitBackend = Field(
        default_factory=LimitBackend, validation_alias="rate_limits"
    )

    @model_validator(mode="before")
    @classmethod
    def _tables(cls, data: Any) -> Any:
        """Keys by kid, route limits over the defaults, a readable common passwords file."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        keys = data.get("keys", {})
        if not isinstance(keys, dict):
            raise SettingError("keys", "must be a table of keys by kid")
        data["keys"] = tuple(
            validate_table(
                {**spec, "kid": kid} if isinstance(spec, dict) else spec,
                SigningKey,
                within=f"auth.keys.{kid}",
            )
            for kid, spec in keys.items()
        )
        routes = data.get("route_limits")
        if isinstance(routes, dict):
            data["route_limits"] = {**DEFAULT_ROUTE_LIMITS, **routes}
        passwords = data.get("common_passwords_file")
        if isinstance(passwords, str):
            read_secret(passwords, "common_passwords_file")
        return data

    def __post_init__(self) -> None:
        kids = [k.kid for k in self.keys]
        require(len(kids) == len(set(kids)), "auth.keys: duplicate kid")
        if self.keys:
            require(self.active_kid in kids, "auth.active_kid must name one of auth.keys")
            active = next(k for k in self.keys if k.kid == self.active_kid)
            require(active.can_sign, f"auth.keys.{active.kid}: the active key cannot sign")
        require(self.access_token_seconds > 0, "auth.access_token_seconds must be positive")
        require(self.refresh_token_seconds > 0, "auth.refresh_token_seconds must be positive")
        require(self.password_min_length >= 8, "auth.password_min_length must be >= 8")
        require(self.max_body_bytes >= 1024, "auth.max_body_bytes must be >= 1024")
        require(self.lockout_after_failures >= 1, "auth.lockout_after_failures must be >= 1")
        require(
            0 < self.lockout_initial_seconds <= self.lockout_max_seconds,
            "auth: need 0 < lockout_initial_seconds <= lockout_max_seconds",
        )
        require(self.slowdown_after_failures >= 1, "auth.slowdown_after_failures must be >= 1")
        require(
            0 < self.slowdown_initial_seconds <= self.slowdown_max_seconds,
            "auth: need 0 < slowdown_initial_seconds <= slowdown_max_seconds",
        )
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise ConfigError(f"auth.trusted_proxies: {proxy!r} is not an address") from exc
        require(
            self.forwarded_header in FORWARDED_HEADERS,
            f"auth.forwarded_header must be one of {FORWARDED_HEADERS}",
        )
        require(self.claim_token_seconds > 0, "auth.claim_token_seconds must be positive")
        require(self.argon2_time_cost >= 1, "auth.argon2_time_cost must be >= 1")
        require(self.argon2_memory_kib >= 64, "auth.argon2_memory_kib must be >= 64")
        require(
            self.public_url.startswith(("http://", "https://")),
            "auth.public_url must be an http(s) URL",
        )
        require(self.reset_token_seconds > 0, "auth.reset_token_seconds must be positive")
        require(self.invitation_token_seconds > 0, "auth.invitation_token_seconds must be positive")

    @property
    def enabled(self) -> bool:
        """The JSON API is served only when signing keys are configured."""
        return bool(self.keys)


@dataclass(frozen=True, slots=True, config=SETTINGS)
class ProvisioningSettings:
    """Device enrolment: the broker's dynamic-security admin and the address devices use."""

    enabled: Bool = False
    username: str = "konak-provisioner"
    password: str = field(default="", repr=False)
    broker_host: str | None = None
    broker_port: Int | None = None

    _secrets = secrets("password", inline=False)

    def __post_init__(self) -> None:
        if self.broker_port is not None:
            require(0 < self.broker_port < 65536, "provisioning.broker_port is not a TCP port")


# Per client address, on top of ``ip_limit``; hub.toml's ``[auth.route_limits]`` replaces
# these by name and adds others.
DEFAULT_ROUTE_LIMITS: Final[Mapping[str, RateLimit]] = {
    "login": RateLimit(10, 0.5),
    "password": RateLimit(10, 0.5),
    "password_reset": RateLimit(5, 0.05),
}

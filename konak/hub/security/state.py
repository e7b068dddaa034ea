"""The security core of a running hub: the auth database's services, the limits, the
lock-out, enrolment and mail, built once from the settings and handed to the HTTP API."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from konak.hub import database
from konak.hub.mcp_registry import McpRegistry
from konak.hub.outbound import OutboundPolicy
from konak.hub.quotas import QuotaSettings
from konak.hub.security.audit import AuditLog
from konak.hub.security.errors import Unauthenticated
from konak.hub.security.passwords import Hasher, PasswordPolicy
from konak.hub.security.ratelimit import Lockout, LoginLockout, RateLimiter
from konak.hub.security.rbac import Identity
from konak.hub.security.redis_limits import RedisBuckets, RedisUnreachable
from konak.hub.security.redis_lockout import RedisLockout
from konak.hub.security.reset import Mailer, PasswordResets
from konak.hub.security.settings import AuthSettings
from konak.hub.security.tokens import Tokens
from konak.hub.security.users import Users
from konak.hub.settings import HubSettings
from konak.provisioning.claims import Claims, DynsecProvisioner, Provisioner


@dataclass
class AuthState:
    """Users, tokens, audit, claims, limits and lock-out of one hub (``provisioner``,
    ``resets`` and ``mailer`` are None when the hub is not configured for them)."""

    settings: AuthSettings
    db: sqlite3.Connection
    users: Users
    tokens: Tokens
    audit: AuditLog
    claims: Claims
    limiter: RateLimiter
    lockout: LoginLockout
    mcp_registry: McpRegistry
    provisioner: Provisioner | None = None
    broker_address: tuple[str, int] = ("127.0.0.1", 1883)
    resets: PasswordResets | None = None
    mailer: Mailer | None = None
    background: set[asyncio.Task[None]] = field(default_factory=set)
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    enrol_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    redis: RedisBuckets | None = None  # the shared limits' connection, when configured

    @classmethod
    def build(
        cls,
        settings: HubSettings,
        provisioner: Provisioner | None = None,
        *,
        mcp_on_change: Callable[[], Awaitable[None]] | None = None,
        mcp_outbound: Callable[[], OutboundPolicy] = OutboundPolicy,
    ) -> AuthState:
        """Open the auth database and build every part from ``settings`` (a ConfigError
        names what is wrong); ``provisioner`` replaces the dynamic-security one. The MCP
        registry gets ``mcp_on_change`` and ``mcp_outbound`` (see :class:`McpRegistry`)."""
        auth = settings.auth
        prov = settings.provisioning
        if provisioner is None and prov.enabled:
            provisioner = DynsecProvisioner(
                settings.mqtt.host, settings.mqtt.port, prov.username, prov.password
            )
        broker = (prov.broker_host or settings.mqtt.host, prov.broker_port or settings.mqtt.port)
        redis = RedisBuckets(auth.limit_backend) if auth.limit_backend.backend == "redis" else None
        db = database.connect(settings.database_path)
        hasher = Hasher(time_cost=auth.argon2_time_cost, memory_cost_kib=auth.argon2_memory_kib)
        policy = PasswordPolicy.load(auth.password_min_length, auth.common_passwords_file)
        users = Users(db, hasher, policy)
        for tenant_id in settings.tenants:
            users.ensure_tenant(tenant_id)
        return cls(
            settings=auth,
            db=db,
            users=users,
            tokens=Tokens(auth, db),
            audit=AuditLog(db),
            claims=Claims(db),
            mcp_registry=McpRegistry(db, on_change=mcp_on_change, outbound=mcp_outbound),
            limiter=RateLimiter(auth, redis),
            lockout=RedisLockout(redis.client, auth) if redis is not None else Lockout(auth),
            provisioner=provisioner,
            broker_address=broker,
            resets=(
                PasswordResets(db, auth.reset_token_seconds, auth.invitation_token_seconds)
                if auth.smtp
                else None
            ),
            mailer=Mailer(auth.smtp) if auth.smtp else None,
            quotas=settings.quotas,
            redis=redis,
        )

    async def start(self) -> None:
        """Connect to Redis when the limits are shared (RedisUnreachable closes everything)."""
        if self.redis is None:
            return
        try:
            await self.redis.start()
        except RedisUnreachable:
            await self.redis.close()
            self.db.close()
            raise

    async def close(self) -> None:
        """Close Redis, cancel the mails still being sent, close the auth database."""
        if self.redis is not None:
            await self.redis.close()
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        self.db.close()

    def authenticate(self, authorization: str) -> Identity:
        """The identity of an ``Authorization: Bearer`` value; Unauthenticated otherwise."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send 'Authorization: Bearer <access token>'")
        claims = self.tokens.verify_access(token.strip())
        user = self.users.by_id(claims.user_id)
        if user is None or user.disabled:
            raise Unauthenticated("this account is not active", code="token_revoked")
        return self.users.identity(user, claims.family_id)

    def enrolled(self) -> Callable[[str, str], bool] | None:
        """Whether a tenant's device is enrolled and not revoked, for MQTT ingest; None when
        this hub does not enrol devices (its broker's static logins are then the registry)."""
        return self.claims.is_active if self.provisioner is not None else None

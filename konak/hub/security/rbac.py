"""Roles, actions and the one authorisation decision every handler and ingest path uses.

Deny by default: an action not in a role's set is refused; a tenant the identity has no
role in looks like it does not exist (404), so tenants cannot be discovered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from konak.hub.security.errors import Forbidden, NotFound, Unauthenticated


class Role(StrEnum):
    """A user's role in one tenant, strongest first."""

    ADMIN = "admin"
    OPERATOR = "operator"
    MEMBER = "member"
    READONLY = "readonly"


class Action(StrEnum):
    """Everything a request can do; each HTTP route declares exactly one."""

    PUBLIC = "public"  # health, metrics, the OpenAPI document
    LOGIN = "auth.login"
    REFRESH = "auth.refresh"
    RESET = "auth.reset"  # password reset: authenticated by the mailed token
    ENROLL = "devices.enroll"  # authenticated by the claim token in the body
    SELF = "auth.self"  # me, logout, password change: any signed-in user
    TENANTS_LIST = "tenants.list"
    TENANTS_CREATE = "tenants.create"
    TENANT_READ = "tenant.read"
    USERS_READ = "users.read"
    USERS_WRITE = "users.write"
    DEVICES_READ = "devices.read"
    DEVICES_CLAIM = "devices.claim"
    DEVICES_REVOKE = "devices.revoke"
    AUDIT_READ = "audit.read"
    MCP_READ = "mcp.read"
    MCP_WRITE = "mcp.write"
    TURNS_READ = "turns.read"  # transcripts: turn history and live turns
    DEVICES_ANNOUNCE = "devices.announce"  # speak a text on a device or an area
    VOICE_READ = "voice.read"  # the tenant's sentences, slot lists and wake thresholds
    VOICE_WRITE = "voice.write"  # save a voice config revision and publish it
    ALERTS_READ = "alerts.read"  # the notification centre (read state is per user)
    DEVICES_UPDATE = "devices.update"  # update_models: devices pull and swap in their models
    # The tenant's knowledge (issue 17): collections, documents, search, jobs.
    KNOWLEDGE_READ = "knowledge.read"  # list, get, search; job status and events
    KNOWLEDGE_WRITE = "knowledge.write"  # collections and documents; the embedding endpoint
    KNOWLEDGE_IMPORT = "knowledge.import"  # bulk import jobs (and cancelling a job)
    KNOWLEDGE_EXPORT = "knowledge.export"  # bulk export (every passage with its vector)
    # MQTT ingest: what a device may publish for its own tenant, one action per kind.
    STATUS_SEND = "status.send"
    TELEMETRY_SEND = "telemetry.send"
    WAKE_SEND = "wake.send"
    INTENT_SEND = "intent.send"


# Actions a request may take without an access token.
ANONYMOUS: Final = frozenset(
    {Action.PUBLIC, Action.LOGIN, Action.REFRESH, Action.RESET, Action.ENROLL}
)
# Actions any signed-in user may take on platform level.
SIGNED_IN: Final = frozenset({Action.SELF, Action.TENANTS_LIST})
# Platform actions only the superadmin may take.
PLATFORM: Final = frozenset({Action.TENANTS_CREATE})

_READONLY: Final = frozenset(
    {
        Action.TENANT_READ,
        Action.DEVICES_READ,
        Action.VOICE_READ,
        Action.ALERTS_READ,
        Action.KNOWLEDGE_READ,
    }
)
_MEMBER: Final = _READONLY | {Action.TURNS_READ, Action.DEVICES_ANNOUNCE}
_OPERATOR: Final = _MEMBER | {
    Action.DEVICES_CLAIM,
    Action.DEVICES_REVOKE,
    Action.DEVICES_UPDATE,
    Action.MCP_READ,
    Action.VOICE_WRITE,
    Action.KNOWLEDGE_WRITE,
    Action.KNOWLEDGE_IMPORT,
    Action.KNOWLEDGE_EXPORT,
}
_ADMIN: Final = _OPERATOR | {
    Action.USERS_READ,
    Action.USERS_WRITE,
    Action.AUDIT_READ,
    Action.MCP_WRITE,
}

ROLE_ACTIONS: Final[Mapping[Role, frozenset[Action]]] = {
    Role.ADMIN: _ADMIN,
    Role.OPERATOR: _OPERATOR,
    Role.MEMBER: _MEMBER,
    Role.READONLY: _READONLY,
}
DEVICE_ACTIONS: Final = frozenset(
    {Action.STATUS_SEND, Action.TELEMETRY_SEND, Action.WAKE_SEND, Action.INTENT_SEND}
)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is asking: a user (roles per tenant, maybe superadmin) or a device of one tenant."""

    subject: str
    roles: Mapping[str, Role] = field(default_factory=dict)
    superadmin: bool = False
    device_tenant: str | None = None
    email: str = ""
    family_id: str | None = None

    @classmethod
    def device(cls, tenant: str, device: str) -> Identity:
        """A device, identified by its broker login (the topic it may publish on)."""
        return cls(subject=f"device:{tenant}/{device}", device_tenant=tenant)


@dataclass(frozen=True, slots=True)
class Resource:
    """What an action is on: a tenant's resource, or the platform (``tenant=None``)."""

    tenant: str | None
    kind: str = ""
    key: str = ""


def authorize(identity: Identity | None, action: Action, resource: Resource) -> None:
    """Return when ``identity`` may take ``action`` on ``resource``; raise otherwise."""
    if action in ANONYMOUS:
        return
    if identity is None:
        raise Unauthenticated("sign in first")
    if identity.device_tenant is not None:
        if action in DEVICE_ACTIONS and resource.tenant == identity.device_tenant:
            return
        raise Forbidden("devices may only send their own status, telemetry, wakes and intents")
    if action in SIGNED_IN:
        return
    if identity.superadmin:
        return
    if action in PLATFORM or resource.tenant is None:
        raise Forbidden("only the platform superadmin may do this")
    role = identity.roles.get(resource.tenant)
    if role is None:
        raise NotFound(f"no tenant {resource.tenant!r}")
    if action not in ROLE_ACTIONS[role]:
        raise Forbidden(f"role {role.value} may not {action.value}")


def tenant_permissions(identity: Identity, tenants: Iterable[str]) -> dict[str, frozenset[Action]]:
    """The actions ``identity`` holds in each tenant it may act in: its role's; for the
    superadmin, every tenant action in each of ``tenants`` (what a console offers)."""
    if identity.superadmin:
        return {t: ROLE_ACTIONS[Role.ADMIN] for t in sorted(tenants)}
    return {t: ROLE_ACTIONS[role] for t, role in sorted(identity.roles.items())}


def platform_permissions(identity: Identity) -> frozenset[Action]:
    """The platform actions ``identity`` holds (the superadmin's)."""
    return PLATFORM if identity.superadmin else frozenset()

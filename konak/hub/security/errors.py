"""The security core's domain errors, each with a stable code (the HTTP API maps each kind to
its status; MQTT ingest drops the message)."""

from __future__ import annotations

from konak.hub.errors import HubError


class SecurityError(HubError):
    """A request the security core refuses or cannot carry out, as given."""

    code = "bad_request"


class Unauthenticated(SecurityError):
    """No valid credentials (missing, expired, tampered, revoked token; wrong password)."""

    code = "unauthenticated"


class Forbidden(SecurityError):
    """Authenticated, but the role does not allow the action."""

    code = "forbidden"


class NotFound(SecurityError):
    """No such resource in this tenant (also what another tenant's resources look like)."""

    code = "not_found"


class NotEnabled(NotFound):
    """A feature this hub is not configured for (like a route it does not serve)."""

    code = "not_enabled"


class QuotaExceeded(SecurityError):
    """The tenant's quota (devices) is used up."""

    code = "quota_exceeded"


class Conflict(SecurityError):
    """The resource exists already."""

    code = "conflict"


class Unavailable(SecurityError):
    """A dependency (the broker's dynamic-security plugin, Redis) could not do its part."""

    code = "unavailable"


class RateLimited(SecurityError):
    """Too many requests; ``retry_after_seconds`` says when to try again."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_seconds: float, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after_seconds = retry_after_seconds

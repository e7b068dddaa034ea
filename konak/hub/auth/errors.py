"""Errors of the JSON API, each with a stable code and the HTTP status it maps to."""

from __future__ import annotations

from typing import ClassVar

from konak.hub.errors import HubError


class ApiError(HubError):
    """An error the API reports to its caller as ``{"error": {"code", "message"}}``."""

    code = "bad_request"
    status: ClassVar[int] = 400


class Unauthenticated(ApiError):
    """No valid credentials (missing, expired, tampered, revoked token; wrong password)."""

    code = "unauthenticated"
    status = 401


class Forbidden(ApiError):
    """Authenticated, but the role does not allow the action."""

    code = "forbidden"
    status = 403


class NotFound(ApiError):
    """No such resource in this tenant (also what another tenant's resources look like)."""

    code = "not_found"
    status = 404


class NotEnabled(NotFound):
    """A feature this hub is not configured for (like a route it does not serve)."""

    code = "not_enabled"


class QuotaExceeded(ApiError):
    """The tenant's quota (devices) is used up."""

    code = "quota_exceeded"
    status = 403


class Conflict(ApiError):
    """The resource exists already."""

    code = "conflict"
    status = 409


class TooLarge(ApiError):
    """The request body is over the configured limit."""

    code = "body_too_large"
    status = 413


class Unsupported(ApiError):
    """The request body is not JSON."""

    code = "unsupported_media_type"
    status = 415


class Unavailable(ApiError):
    """A dependency (the broker's dynamic-security plugin) could not do its part."""

    code = "unavailable"
    status = 503


class RateLimited(ApiError):
    """Too many requests; ``retry_after_seconds`` says when to try again."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after_seconds: float, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after_seconds = retry_after_seconds

"""The API's own request errors (body, query) and the HTTP status of every error it reports."""

from __future__ import annotations

from typing import Any, Final

from konak.hub.errors import HubError
from konak.hub.security.errors import (
    Conflict,
    Forbidden,
    NotFound,
    QuotaExceeded,
    RateLimited,
    SecurityError,
    Unauthenticated,
    Unavailable,
)


class BadRequest(HubError):
    """The request itself is malformed (its body, its query, a value it names)."""

    code = "bad_request"


class TooLarge(BadRequest):
    """The request body is over the configured limit."""

    code = "body_too_large"


class Unsupported(BadRequest):
    """The request body is not JSON."""

    code = "unsupported_media_type"


class Unprocessable(BadRequest):
    """The body is well formed, but what it asks for cannot be done (a template the device
    could not load); ``details`` says where."""

    code = "unprocessable"

    def __init__(
        self, message: str, details: list[dict[str, Any]] | None = None, *, code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.details = details


class Exhausted(BadRequest):
    """A tenant's storage quota (vectors, bytes) is used up: nothing more is taken until
    something is deleted or the quota is raised (no Retry-After: waiting does not help)."""

    code = "quota_exceeded"


# The errors the API reports to its caller as ``{"error": {"code", "message"}}``.
ApiError = SecurityError | BadRequest
API_ERRORS: Final = (SecurityError, BadRequest)
# Each error kind's status; a subclass takes its nearest listed ancestor's.
STATUS: Final[dict[type[HubError], int]] = {
    SecurityError: 400,
    BadRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    QuotaExceeded: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Unprocessable: 422,
    Unsupported: 415,
    RateLimited: 429,
    Exhausted: 429,
    Unavailable: 503,
}


def status_of(exc: ApiError) -> int:
    """The HTTP status an error is reported with."""
    for kind in type(exc).__mro__:
        status = STATUS.get(kind)
        if status is not None:
            return status
    return 400

"""Request bodies of the JSON API (pydantic; unknown fields are refused)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from konak.hub.api.errors import BadRequest
from konak.hub.security.audit import MAX_PAGE, SQLITE_INTEGER_MAX
from konak.hub.security.rbac import Role
from konak.protocol.topics import IDENTIFIER_PATTERN

Email = Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Secret = Annotated[str, Field(min_length=1, max_length=1024)]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
Text = Annotated[str, Field(min_length=1, max_length=200)]


class Body(BaseModel):
    """Base of every request body."""

    model_config = ConfigDict(extra="forbid", strict=True)


class LoginBody(Body):
    """Sign in with e-mail and password."""

    email: Email
    password: Secret


class RefreshBody(Body):
    """Exchange a refresh token for a new pair."""

    refresh_token: Secret


class PasswordChangeBody(Body):
    """Change one's own password (signs out every session)."""

    current_password: Secret
    new_password: Secret


class ResetRequestBody(Body):
    """Ask for a password-reset link by e-mail."""

    email: Email


class ResetConfirmBody(Body):
    """Set a new password with the token of a reset link."""

    token: Secret
    new_password: Secret


class TenantBody(Body):
    """Create a tenant (superadmin)."""

    tenant_id: Identifier
    name: Text


class MemberBody(Body):
    """Invite an address into a tenant with a role (a mailed, single-use link)."""

    email: Email
    role: Role


class InvitationAcceptBody(Body):
    """Accept an invitation by creating the account it names, with its first password."""

    token: Secret
    new_password: Secret


class InvitationJoinBody(Body):
    """Accept an invitation as the signed-in owner of the account it names."""

    token: Secret


class Query(BaseModel):
    """Base of the query parameters of a route (strings from the URL, converted)."""

    model_config = ConfigDict(extra="ignore")


Q = TypeVar("Q", bound=Query)


class InvalidQuery(BadRequest):
    """The query parameters do not match the route's."""

    code = "invalid_query"


def parse_query(query: Mapping[str, str], model: type[Q]) -> Q:
    """Validate a request's query parameters against ``model`` (bounds included)."""
    try:
        return model.model_validate(dict(query))
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        name = ".".join(str(p) for p in err["loc"])
        raise InvalidQuery(f"query parameter {name!r}: {err['msg']}") from exc


class TokenQuery(Query):
    """The token of a mailed link."""

    token: Secret


# Timestamps in seconds since the epoch; every integer is bounded (SQLite's are 64-bit).
Timestamp = Annotated[float, Field(ge=0, le=1e11, allow_inf_nan=False)]


class AuditQueryParams(Query):
    """Filters and paging of the audit log."""

    actor: Annotated[str, Field(max_length=254)] | None = None
    action: Annotated[str, Field(max_length=64)] | None = None
    outcome: Annotated[str, Field(max_length=16)] | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
    before_id: Annotated[int, Field(ge=1, le=SQLITE_INTEGER_MAX)] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 100


class RoleBody(Body):
    """Change a member's role."""

    role: Role


class ClaimBody(Body):
    """Mint a one-time claim token for enrolling a device; with ``device``, a token only
    that device id may redeem, also while it is enrolled (a re-enrolment)."""

    expires_in_seconds: Annotated[int, Field(ge=60, le=30 * 24 * 3600)] | None = None
    device: Identifier | None = None


class EnrollBody(Body):
    """What a device sends to enrol."""

    token: Secret
    name: Text
    area: Text | None = None
    device: Identifier | None = None


HeaderName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
# A header value: printable ASCII, no CR/LF (no header injection). ``None`` in an update
# keeps the stored value (clients never see it).
HeaderValue = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[\x20-\x7e]+$")]
ToolName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/-]+$")]


def _parsable_url(url: str) -> str:
    """The pattern admits strings urllib cannot parse (``http://[``); refuse them here."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from exc
    if not parts.hostname or port == 0:
        raise ValueError("the URL needs a host (and a non-zero port)")
    return url


HttpUrl = Annotated[
    str,
    Field(min_length=8, max_length=2048, pattern=r"^https?://[^\s@/]+(/\S*)?$"),
    AfterValidator(_parsable_url),
]


class McpServerBody(Body):
    """An MCP server of the tenant over Streamable HTTP (``name`` only when creating)."""

    url: HttpUrl
    headers: Annotated[dict[HeaderName, HeaderValue | None], Field(max_length=20)] = Field(
        default_factory=dict
    )
    timeout_seconds: Annotated[float, Field(ge=0.5, le=120)] = 10.0
    read_only_tools: Annotated[list[ToolName], Field(max_length=100)] = Field(default_factory=list)


class McpServerCreateBody(McpServerBody):
    """Add an MCP server to the tenant."""

    name: Identifier


# -- the console's fleet, turns, announcements and alerts (issue 15) -----------------------
DeviceId = Annotated[str, Field(min_length=1, max_length=63, pattern=IDENTIFIER_PATTERN)]
AreaName = Annotated[str, Field(min_length=1, max_length=128)]
PageSize = Annotated[int, Field(ge=1, le=MAX_PAGE)]


class FleetQuery(Query):
    """Filters of the fleet."""

    area: AreaName | None = None
    state: Literal["online", "offline", "error", "never_seen"] | None = None


class TelemetryQuery(Query):
    """How many of a device's newest telemetry samples."""

    limit: PageSize = 100


class TurnsQuery(Query):
    """Filters and paging of the turn history (``before``: a ``next_before`` answered)."""

    device: DeviceId | None = None
    before: Timestamp | None = None
    limit: PageSize = 50


class AlertsQuery(Query):
    """Filters and paging of the alerts (``before_id``: the last id of the page before)."""

    unread: bool = False
    before_id: Annotated[int, Field(ge=1, le=SQLITE_INTEGER_MAX)] | None = None
    limit: PageSize = 50


class UpdateModelsBody(Body):
    """Pull, verify and swap in models on one device, or on every device of an area."""

    device: DeviceId | None = None
    area: AreaName | None = None
    model_set: Identifier | None = Field(
        default=None,
        description="A set or model id of the device's manifest; none: the models it runs.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> UpdateModelsBody:
        if (self.device is None) == (self.area is None):
            raise ValueError("give exactly one of 'device' or 'area'")
        return self


class AnnounceBody(Body):
    """Speak a text on one device, or on every device of an area (exactly one of them)."""

    text: Annotated[str, Field(min_length=1, max_length=500, pattern=r"\S")]
    device: DeviceId | None = None
    area: AreaName | None = None

    @model_validator(mode="after")
    def _one_target(self) -> AnnounceBody:
        if (self.device is None) == (self.area is None):
            raise ValueError("give exactly one of 'device' or 'area'")
        return self

"""The one error that parsing or building a wire message may raise."""

from __future__ import annotations

from typing import Final

from konak.errors import KonakError

# Stable codes; receivers count drops by these (metrics label ``reason``).
OVERSIZE: Final = "oversize"
MALFORMED_JSON: Final = "malformed_json"
NOT_AN_OBJECT: Final = "not_an_object"
MISSING_FIELD: Final = "missing_field"
WRONG_TYPE: Final = "wrong_type"
INVALID_VALUE: Final = "invalid_value"
UNKNOWN_VERSION: Final = "unknown_version"
TYPE_MISMATCH: Final = "type_mismatch"
TOPIC_MISMATCH: Final = "topic_mismatch"
BAD_TOPIC: Final = "bad_topic"

ALL_CODES: Final = (
    OVERSIZE,
    MALFORMED_JSON,
    NOT_AN_OBJECT,
    MISSING_FIELD,
    WRONG_TYPE,
    INVALID_VALUE,
    UNKNOWN_VERSION,
    TYPE_MISMATCH,
    TOPIC_MISMATCH,
    BAD_TOPIC,
)


class ProtocolError(KonakError):
    """A topic or payload that does not follow the wire contract.

    ``code`` is one of the module constants; ``field`` names the offending field
    (dotted path) where there is one.
    """

    code = INVALID_VALUE

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field

    def __repr__(self) -> str:
        return f"ProtocolError(code={self.code!r}, message={self.message!r}, field={self.field!r})"

"""The root of Konak's error hierarchy: every error carries a stable ``code``."""

from __future__ import annotations


class KonakError(Exception):
    """Base of every error Konak raises on purpose; ``code`` is stable across releases."""

    code: str = "konak_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The human-readable message, without the code."""
        return str(self.args[0]) if self.args else ""


class ConfigError(KonakError):
    """A configuration file (or a value in it) is unusable: one line naming the file and key.

    Not a ValueError on purpose: raised inside a settings model's validation, it passes
    through pydantic unchanged, with the message it was given.
    """

    code = "config_invalid"

"""Errors of the model store; each carries a stable ``code``."""

from __future__ import annotations

from typing import Final

from konak.errors import ConfigError, KonakError

# Stable error codes (part of the CLI contract: scripts may match on them).
CHECKSUM_MISMATCH: Final = "checksum_mismatch"
SIZE_MISMATCH: Final = "size_mismatch"
UNKNOWN_MODEL: Final = "unknown_model"
SOURCE_UNREACHABLE: Final = "source_unreachable"
LICENSE_NOT_ACCEPTED: Final = "license_not_accepted"
DISK_FULL: Final = "disk_full"
MANIFEST_INVALID: Final = "manifest_invalid"
NOT_INSTALLED: Final = "not_installed"
CORRUPT: Final = "corrupt"
ENGINE_UNAVAILABLE: Final = "engine_unavailable"
BUSY: Final = "store_busy"
CONVERSION_FAILED: Final = "conversion_failed"


class ModelError(KonakError):
    """A model could not be fetched, verified, installed or found."""

    code = "model_error"


class SourceError(ModelError):
    """One source failed for one model; the next source may still succeed."""

    code = SOURCE_UNREACHABLE


class ManifestError(ModelError, ConfigError):
    """A manifest that cannot be used, in one line: ``manifest FILE: section.key: reason``.

    A ConfigError like every unusable file, and a ModelError to the model store's callers.
    """

    code = MANIFEST_INVALID


def invalid_manifest(origin: str, what: str) -> ManifestError:
    """The error for a manifest (file or packaged name ``origin``) and what is wrong."""
    return ManifestError(f"manifest {origin}: {what}")

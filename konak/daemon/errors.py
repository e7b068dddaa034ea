"""Errors of the device daemon, each with a stable code."""

from __future__ import annotations

from konak.errors import ConfigError, KonakError

__all__ = ["AudioError", "ConfigError", "DaemonError", "EngineError", "QueueError"]


class DaemonError(KonakError):
    """Something the daemon cannot work around."""

    code = "daemon_error"


class AudioError(DaemonError):
    """An audio source or sink cannot be opened or used."""

    code = "audio_error"


class EngineError(DaemonError):
    """A model engine (wake, VAD, STT, intent, TTS) failed to load or run."""

    code = "engine_error"


class QueueError(DaemonError):
    """The persistent intent queue cannot be opened or written."""

    code = "queue_error"

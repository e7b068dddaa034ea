"""Errors of the hub, each with a stable code."""

from __future__ import annotations

from konak.errors import ConfigError, KonakError

__all__ = ["ConfigError", "HubError", "ToolError"]


class HubError(KonakError):
    """Base of the hub's deliberate errors."""

    code = "hub_error"


class ToolError(HubError):
    """An MCP tool call failed; ``code`` says how (timeout, circuit_open, ...)."""

    code = "tool_error"


class PublishError(HubError):
    """A message to a device could not be handed to the broker in time (the link is down,
    or the broker is slow to acknowledge)."""

    code = "publish_failed"

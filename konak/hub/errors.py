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

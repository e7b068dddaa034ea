"""A circuit breaker per MCP server: after repeated failures, fail fast for a while."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class CircuitState(StrEnum):
    """Closed: calls pass. Open: calls fail fast. Half-open: one trial call passes."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; after ``reset_seconds`` lets
    one trial call through, which closes it on success and re-opens it on failure."""

    def __init__(
        self,
        failure_threshold: int,
        reset_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> CircuitState:
        """The current state."""
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._clock() - self._opened_at >= self.reset_seconds:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def allow(self) -> bool:
        """Whether a call may go ahead now (in half-open state, only one at a time)."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def record_success(self) -> None:
        """A call succeeded: close the circuit."""
        self.reset()

    def reset(self) -> None:
        """Close the circuit and forget past failures (the server was reconnected and
        answered, so what failed before says nothing about it now)."""
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def record_failure(self) -> bool:
        """A call failed: count it, and open (or re-open) the circuit at the threshold.
        Returns whether this failure opened it."""
        self._failures += 1
        opened = self._trial_running or self._failures >= self.failure_threshold
        if opened:
            self._opened_at = self._clock()
        self._trial_running = False
        return opened

    def record_abandoned(self) -> None:
        """A call ended without a verdict (it was cancelled): a half-open trial is released,
        so that the next call may try, instead of the circuit staying half-open for good."""
        self._trial_running = False

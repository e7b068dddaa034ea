"""The circuit breaker's reset after a good reconnect and its release of an abandoned trial."""

from __future__ import annotations

from konak.hub.breaker import CircuitBreaker, CircuitState


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_reset_closes_an_open_circuit_and_forgets_the_failures() -> None:
    breaker = CircuitBreaker(2, 600, Clock())
    opened = [breaker.record_failure(), breaker.record_failure()]

    breaker.reset()
    after_one_more = breaker.record_failure()

    assert opened == [False, True]
    assert after_one_more is False
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allow()


def test_an_abandoned_trial_lets_the_next_call_try() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 30, clock)
    breaker.record_failure()
    clock.now += 30
    trial = breaker.allow()

    breaker.record_abandoned()

    assert trial
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow()

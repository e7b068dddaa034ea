"""Unit tests of the hub's small parts: breaker, speakable text, templates, arbitration."""

from __future__ import annotations

import asyncio

import pytest
from mcp.types import CallToolResult, ImageContent, TextContent

from konak.hub.arbitration import Arbiter
from konak.hub.breaker import CircuitBreaker, CircuitState
from konak.hub.mcp_servers.fleet import token_tenant
from konak.hub.speakable import result_text, speakable
from konak.hub.turns import _MissingSlot, render_arguments
from konak.protocol import Intent


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_at_the_threshold_and_fails_fast() -> None:
    breaker = CircuitBreaker(2, 30, Clock())

    breaker.record_failure()
    assert breaker.allow()
    breaker.record_failure()

    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow()


def test_the_breaker_lets_one_trial_through_after_the_reset_time_and_closes_on_success() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 30, clock)
    breaker.record_failure()
    clock.now += 30

    first, second = breaker.allow(), breaker.allow()
    breaker.record_success()

    assert (first, second) == (True, False)
    assert breaker.state is CircuitState.CLOSED


def test_a_failed_trial_reopens_the_breaker() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, 30, clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 31
    assert breaker.allow()

    breaker.record_failure()

    assert breaker.state is CircuitState.OPEN


def test_speakable_text_has_no_markup_links_or_urls() -> None:
    text = "## Result\n\n- **Kitchen** is [on](http://x/y).\n- See https://example.com now `ok`"

    assert speakable(text) == "Result Kitchen is on. See now ok"


def test_long_text_is_cut_at_a_sentence_end() -> None:
    text = "First sentence here. " * 30

    spoken = speakable(text, limit=50)

    assert spoken == "First sentence here. First sentence here."


def test_a_result_without_text_is_spoken_as_done() -> None:
    result = CallToolResult(
        content=[ImageContent(type="image", data="AA==", mime_type="image/png")]
    )

    assert result_text(result) == "Done."
    assert result_text(CallToolResult(content=[TextContent(type="text", text="**Hi**")])) == "Hi"


def test_templates_fill_slots_and_keep_the_type_of_a_lone_slot() -> None:
    args = render_arguments(
        {"name": "{name}", "level": "{brightness}", "say": "in the {area}"},
        {"name": "lamp", "brightness": 40, "area": "hall"},
    )

    assert args == {"name": "lamp", "level": 40, "say": "in the hall"}


def test_a_template_naming_an_absent_slot_raises() -> None:
    with pytest.raises(_MissingSlot):
        render_arguments({"name": "{name}"}, {})


def _intent(device: str, turn: str, score: float | None) -> Intent:
    return Intent(tenant="acme", device=device, turn_id=turn, text="x", wake_score=score)


async def test_arbitration_picks_the_highest_wake_score_in_the_window() -> None:
    arbiter = Arbiter(0.05)

    results = await asyncio.gather(
        arbiter.wins(_intent("a", "t-aaaaaaaa", 0.5), "kitchen"),
        arbiter.wins(_intent("b", "t-bbbbbbbb", 0.9), "kitchen"),
        arbiter.wins(_intent("c", "t-cccccccc", None), "kitchen"),
        arbiter.wins(_intent("d", "t-dddddddd", 0.1), "hall"),
    )

    assert list(results) == [False, True, False, True]


async def test_arbitration_breaks_a_tie_in_favour_of_the_first_arrival() -> None:
    arbiter = Arbiter(0.05)

    results = await asyncio.gather(
        arbiter.wins(_intent("a", "t-aaaaaaaa", 0.7), "kitchen"),
        arbiter.wins(_intent("b", "t-bbbbbbbb", 0.7), "kitchen"),
    )

    assert list(results) == [True, False]


def test_a_fleet_token_maps_to_its_tenant_and_anything_else_to_none() -> None:
    import hashlib

    tokens = {hashlib.sha256(b"secret-token").hexdigest(): "acme"}

    assert token_tenant("Bearer secret-token", tokens) == "acme"
    assert token_tenant("bearer secret-token", tokens) == "acme"
    assert token_tenant("Bearer wrong", tokens) is None
    assert token_tenant("Basic secret-token", tokens) is None
    assert token_tenant(None, tokens) is None

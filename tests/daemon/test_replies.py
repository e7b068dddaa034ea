"""Replies from the hub reach the turn waiting for them: a repeated reply is a reply, and an
older hub's ``duplicate`` answer to a resent intent does not end the wait for the real one."""

from __future__ import annotations

import threading

from konak.daemon.service import Replies
from konak.protocol import Reply


def _reply(outcome: str, text: str = "") -> Reply:
    return Reply(
        tenant="acme", device="kitchen-pi", turn_id="t-0000000001", outcome=outcome, text=text
    )  # type: ignore[arg-type]


def test_a_duplicate_answer_does_not_end_the_wait_and_the_real_reply_does() -> None:
    replies = Replies()
    replies.expect("t-0000000001")
    never = threading.Event()

    took_duplicate = replies.resolve(_reply("duplicate"))
    nothing_yet = replies.wait("t-0000000001", 0.0, never)
    replies.expect("t-0000000001")
    replies.resolve(_reply("ok", "Turned on the kitchen light."))
    got = replies.wait("t-0000000001", 5.0, never)

    assert took_duplicate is True  # it was for a waiting turn, not an unknown one
    assert nothing_yet is None
    assert got is not None
    assert (got.outcome, got.text) == ("ok", "Turned on the kitchen light.")


def test_a_reply_to_a_turn_nobody_waits_for_is_not_taken() -> None:
    assert Replies().resolve(_reply("ok", "Done.")) is False


def test_a_repeated_reply_ends_the_wait_of_a_device_that_lost_the_first() -> None:
    replies = Replies()
    replies.expect("t-0000000001")
    repeat = _reply("ok", "Turned on the kitchen light.").model_copy(update={"repeat": True})

    took = replies.resolve(repeat)
    got = replies.wait("t-0000000001", 5.0, threading.Event())

    assert took is True
    assert got is not None
    assert (got.text, got.speak, got.repeat) == ("Turned on the kitchen light.", True, True)

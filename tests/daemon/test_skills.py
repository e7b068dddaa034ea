"""Time, date and timers answered on the device."""

from __future__ import annotations

import datetime as dt
import threading

from konak.daemon.skills import LocalSkills

NOON = dt.datetime(2026, 3, 5, 12, 7)


def test_time_and_date_are_spoken_from_the_device_clock() -> None:
    skills = LocalSkills(lambda: None, now=lambda: NOON)
    assert skills.answer("HassGetCurrentTime", {}) == "It is 12:07."
    assert skills.answer("HassGetCurrentDate", {}) == "Today is Thursday, March 5, 2026."


def test_a_timer_runs_out_and_calls_back() -> None:
    done = threading.Event()
    skills = LocalSkills(done.set)
    assert skills.answer("HassStartTimer", {"seconds": 0.05}) == "Timer set for 0 seconds."
    assert done.wait(10)
    assert skills.remaining() == []


def test_timers_can_be_queried_and_cancelled() -> None:
    fired = threading.Event()
    skills = LocalSkills(fired.set)
    assert skills.answer("HassTimerStatus", {}) == "There is no timer running."
    assert skills.answer("HassStartTimer", {"minutes": 5}) == "Timer set for 5 minutes."
    assert skills.answer("HassTimerStatus", {}).endswith("left on your timer.")
    assert skills.answer("HassCancelTimer", {}) == "Timer cancelled."
    assert skills.answer("HassCancelTimer", {}) == "There is no timer running."
    assert not fired.is_set()


def test_a_timer_without_a_duration_asks_for_one() -> None:
    skills = LocalSkills(lambda: None)
    assert skills.answer("HassStartTimer", {}) == "How long should the timer be?"
    assert skills.remaining() == []


def test_only_local_intents_are_handled() -> None:
    skills = LocalSkills(lambda: None)
    assert skills.handles("HassStartTimer")
    assert not skills.handles("HassTurnOn")

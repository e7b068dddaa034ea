"""The voice turn as one run, with fake engines: the whole event sequence of each case."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from konak.daemon.errors import QueueError
from konak.daemon.outbox import Outbox
from konak.daemon.service import Daemon
from konak.daemon.settings import Settings
from konak.protocol import Intent, Reply
from tests.conftest import fill_disk

from .fakes import (
    STOP,
    Events,
    FakeHub,
    FakeIntents,
    FakeStt,
    FakeTts,
    FedSource,
    RecordingSink,
    chunks,
    command,
    engines,
    settings,
)

Start = Callable[..., tuple[Daemon, Events, FedSource]]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Run daemons made of fakes in threads; each is stopped after the test."""
    running: list[tuple[Daemon, threading.Thread]] = []

    def run(
        stt: FakeStt,
        hub: FakeHub | None = None,
        *,
        config: Settings | None = None,
        sink: RecordingSink | None = None,
        **parts: Any,
    ) -> tuple[Daemon, Events, FedSource]:
        source = FedSource()
        daemon = Daemon(
            config or settings(tmp_path),
            engines(stt, **parts),
            source,
            sink or RecordingSink(),
            offline=True,
            hub_port=hub or FakeHub(),
        )
        events = Events()
        daemon.bus.subscribe(events)
        thread = threading.Thread(target=daemon.run, daemon=True)
        thread.start()
        running.append((daemon, thread))
        return daemon, events, source

    yield run
    for daemon, thread in running:
        daemon.stop()
        thread.join(10)
        assert not thread.is_alive()


def reply(text: str = "Done.", **fields: Any) -> Reply:
    return Reply(tenant="acme", device="pi", turn_id="t-placeholder", text=text, **fields)


def head(command_seconds: float = 2.0, endpoint: str = "end") -> list[Any]:
    """The events every wake-word turn starts with, up to the end of speech."""
    return [
        ("run-start", {"continued": False}),
        ("wake-start", {}),
        ("wake-end", {"word": "hey_jarvis", "score": 1.0}),
        ("stt-start", {}),
        ("vad-start", {}),
        ("vad-end", {"endpoint": endpoint, "command_seconds": command_seconds}),
    ]


def heard(text: str) -> list[Any]:
    return [
        ("stt-end", {"text": text, "rejected": False}),
        ("intent-start", {"text": text}),
    ]


def spoken(text: str, sentences: int = 1, *, interrupted: bool = False) -> list[Any]:
    return [
        ("tts-start", {"text": text}),
        ("tts-end", {"text": text, "sentences": sentences, "interrupted": interrupted}),
    ]


TURN_ON = ("intent-end", {"intent": "HassTurnOn", "slots": {"name": "the kitchen light"}})


def only_run(events: Events) -> str:
    """The one run's id; it started and ended exactly once."""
    (turn,) = events.turns()
    types = [e.type for e in events.events if e.turn_id == turn]
    assert types.count("run-start") == types.count("run-end") == 1
    return turn


def test_a_normal_turn_walks_every_stage_once_and_sends_one_intent(start: Start) -> None:
    hub = FakeHub([reply("The light is on.")])
    stt = FakeStt("turn on the kitchen light")
    _daemon, events, source = start(stt, hub)
    source.feed(command())
    events.wait_ends(1)
    turn = only_run(events)
    assert events.snapshot(turn) == [
        *head(),
        *heard("turn on the kitchen light"),
        TURN_ON,
        ("hub-start", {"queued": 1}),
        ("hub-end", {"outcome": "ok"}),
        *spoken("The light is on."),
        ("run-end", {}),
    ]
    (intent,) = hub.sent
    assert (intent.turn_id, intent.intent, intent.wake_word) == (turn, "HassTurnOn", "hey_jarvis")
    assert intent.expires_at is not None
    assert intent.speech_ended_at is not None
    # 30 s by default, but never longer than the turn waits for its reply (0.3 s here).
    assert intent.expires_at - intent.speech_ended_at == pytest.approx(0.3, abs=0.25)
    # The decoder was fed the pre-roll (the wake word: the grammar lets it come first,
    # and the decoder finds where the command starts) and everything up to the endpoint.
    assert stt.fed == [round((0.48 + 2.0) * 16_000)]  # 0.5 s of pre-roll in whole chunks


def test_no_speech_after_the_wake_word_ends_the_turn_with_no_speech(start: Start) -> None:
    hub = FakeHub()
    _daemon, events, source = start(FakeStt(), hub)
    source.feed(chunks(0, 0.4))
    source.feed(chunks(3000, 0.16))
    source.feed(chunks(0, 2.0))
    events.wait_ends(1)
    turn = only_run(events)
    assert events.snapshot(turn) == [
        *head(command_seconds=0.8, endpoint="no_speech"),
        ("stt-end", {"text": "", "rejected": True, "error": "no_speech"}),
        ("error", {"code": "no_speech"}),
        ("run-end", {}),
    ]
    assert hub.sent == []


def test_a_rejected_command_gets_an_apology_and_no_intent(start: Start) -> None:
    hub = FakeHub()
    _daemon, events, source = start(FakeStt(""), hub)
    source.feed(command())
    events.wait_ends(1)
    turn = only_run(events)
    assert events.snapshot(turn) == [
        *head(),
        ("stt-end", {"text": "", "rejected": True}),
        ("error", {"code": "not_understood"}),
        *spoken("Sorry, I didn't catch that."),
        ("run-end", {}),
    ]
    assert hub.sent == []


@pytest.mark.expect_error_log(match="the stt stage failed")
def test_an_stt_exception_ends_that_turn_with_stt_failed_and_the_next_turn_works(
    start: Start,
) -> None:
    hub = FakeHub()
    _daemon, events, source = start(
        FakeStt(RuntimeError("decoder broke"), "turn on the kitchen light"), hub
    )
    source.feed(command())
    events.wait_ends(1)
    source.feed(chunks(0, 2.0))
    source.feed(command())
    events.wait_ends(2)
    first, second = events.turns()
    assert events.snapshot(first) == [
        *head(),
        ("stt-end", {"error": "stt_failed"}),
        ("error", {"code": "stt_failed", "message": "RuntimeError: decoder broke"}),
        *spoken("Sorry, I didn't catch that."),
        ("run-end", {}),
    ]
    assert [i.turn_id for i in hub.sent] == [second]


@pytest.mark.expect_error_log(match="the intent stage failed")
def test_an_intent_exception_ends_the_turn_with_intent_failed(start: Start) -> None:
    hub = FakeHub()
    intents = FakeIntents(fail=KeyError("slot"))
    _daemon, events, source = start(FakeStt("turn on the kitchen light"), hub, intents=intents)
    source.feed(command())
    events.wait_ends(1)
    turn = only_run(events)
    assert events.snapshot(turn) == [
        *head(),
        *heard("turn on the kitchen light"),
        ("intent-end", {"error": "intent_failed"}),
        ("error", {"code": "intent_failed", "message": "KeyError: 'slot'"}),
        *spoken("Sorry, something went wrong."),
        ("run-end", {}),
    ]
    assert hub.sent == []


@pytest.mark.expect_error_log(match="playback failed")
def test_a_tts_exception_ends_the_turn_with_tts_failed_and_says_nothing_more(
    start: Start,
) -> None:
    hub = FakeHub([reply("The light is on.")])
    tts = FakeTts(fail=OSError("voice gone"))
    _daemon, events, source = start(FakeStt("turn on the kitchen light"), hub, tts=tts)
    source.feed(command())
    events.wait_ends(1)
    turn = only_run(events)
    assert events.snapshot(turn) == [
        *head(),
        *heard("turn on the kitchen light"),
        TURN_ON,
        ("hub-start", {"queued": 1}),
        ("hub-end", {"outcome": "ok"}),
        ("tts-start", {"text": "The light is on."}),
        (
            "tts-end",
            {
                "text": "The light is on.",
                "sentences": 0,
                "interrupted": False,
                "error": "tts_failed",
            },
        ),
        ("error", {"code": "tts_failed", "message": "OSError: voice gone"}),
        ("run-end", {}),
    ]


def test_a_hub_that_does_not_answer_ends_the_turn_with_hub_timeout(start: Start) -> None:
    hub = FakeHub([None])
    _daemon, events, source = start(FakeStt("turn on the kitchen light"), hub)
    source.feed(command())
    events.wait_ends(1)
    turn = only_run(events)
    assert events.snapshot(turn) == [
        *head(),
        *heard("turn on the kitchen light"),
        TURN_ON,
        ("hub-start", {"queued": 1}),
        ("hub-end", {"error": "hub_timeout"}),
        ("error", {"code": "hub_timeout"}),
        *spoken("The hub is not answering."),
        ("run-end", {}),
    ]


LONG = "One. Two. Three. Four. Five."


def test_barge_in_interrupts_the_reply_ends_that_run_and_starts_a_new_one(
    start: Start, tmp_path: Path
) -> None:
    hub = FakeHub([reply(LONG), reply("Off.")])
    sink = RecordingSink(gated=True)
    config = settings(tmp_path, wake={"barge_in": True})
    stt = FakeStt("turn on the kitchen light", "turn off the kitchen light")
    _daemon, events, source = start(stt, hub, config=config, sink=sink)
    source.feed(command())
    assert sink.playing.wait(10)
    first_start = events.wait_for(lambda e: e.type == "run-start")
    source.feed(command())
    second_start = events.wait_for(
        lambda e: e.type == "run-start" and e.turn_id != first_start.turn_id
    )
    sink.release()
    events.wait_ends(2)
    first, second = events.turns()
    assert second == second_start.turn_id
    assert events.snapshot(first) == [
        *head(),
        *heard("turn on the kitchen light"),
        TURN_ON,
        ("hub-start", {"queued": 1}),
        ("hub-end", {"outcome": "ok"}),
        *spoken(LONG, sentences=1, interrupted=True),
        ("run-end", {"interrupted": True}),
    ]
    assert events.snapshot(second)[-3:] == [*spoken("Off."), ("run-end", {})]
    assert [i.turn_id for i in hub.sent] == [first, second]


def test_the_stop_word_interrupts_the_reply_without_starting_a_turn(
    start: Start, tmp_path: Path
) -> None:
    hub = FakeHub([reply(LONG)])
    sink = RecordingSink(gated=True)
    config = settings(tmp_path, wake={"stop_word": "oww-alexa"})
    _daemon, events, source = start(
        FakeStt("turn on the kitchen light"), hub, config=config, sink=sink
    )
    source.feed(command())
    assert sink.playing.wait(10)
    source.feed(chunks(STOP, 0.16))
    source.wait_heard()
    sink.release()
    events.wait_ends(1)
    turn = only_run(events)
    assert events.snapshot(turn)[-3:] == [
        *spoken(LONG, sentences=1, interrupted=True),
        ("run-end", {"interrupted": True}),
    ]
    assert sink.played == [2205]  # the sentence that was playing, nothing after it


def test_a_reply_that_continues_the_conversation_listens_again_without_the_wake_word(
    start: Start,
) -> None:
    hub = FakeHub([reply("Which one?", continue_conversation=True), reply("Off.")])
    stt = FakeStt("turn on the light", "turn off the kitchen light")
    _daemon, events, source = start(stt, hub)
    source.feed(command())
    events.wait_ends(1)
    source.feed(chunks(0, 0.16))
    source.feed(chunks(1000, 1.2))
    source.feed(chunks(0, 1.0))
    events.wait_ends(2)
    _first, second = events.turns()
    assert events.snapshot(second) == [
        ("run-start", {"continued": True}),
        ("stt-start", {}),
        ("vad-start", {}),
        ("vad-end", {"endpoint": "end", "command_seconds": 1.84}),
        *heard("turn off the kitchen light"),
        ("intent-end", {"intent": "HassTurnOff", "slots": {"name": "the kitchen light"}}),
        ("hub-start", {"queued": 1}),
        ("hub-end", {"outcome": "ok"}),
        *spoken("Off."),
        ("run-end", {}),
    ]
    assert [i.continued for i in hub.sent] == [False, True]
    assert hub.sent[1].wake_word is None


def test_a_reload_during_a_turn_lets_it_finish_with_the_old_engines_and_the_next_uses_the_new(
    start: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import konak.daemon.service as service

    new_stt = FakeStt("turn off the kitchen light")
    monkeypatch.setattr(service, "build_intents", lambda *args: FakeIntents())
    monkeypatch.setattr(service, "build_stt", lambda *args: new_stt)
    warmed: list[object] = []
    monkeypatch.setattr(service, "warm_stt", warmed.append)
    monkeypatch.setattr(service, "warm_intents", warmed.append)
    hub = FakeHub(gated=True)
    old_stt = FakeStt("turn on the kitchen light")
    daemon, events, source = start(old_stt, hub)
    source.feed(command())
    events.wait_for(lambda e: e.type == "hub-start")
    reloaded = threading.Event()
    daemon.reload_in_background(lambda: daemon.settings, lambda error: reloaded.set())
    assert reloaded.wait(10)
    hub.gate.set()
    events.wait_ends(1)
    source.feed(command())
    events.wait_ends(2)
    first, second = events.turns()
    assert events.snapshot(first)[6:8] == heard("turn on the kitchen light")
    assert events.snapshot(second)[6:8] == heard("turn off the kitchen light")
    assert (len(old_stt.fed), len(new_stt.fed)) == (1, 1)
    assert daemon.engines.stt is new_stt
    assert new_stt in warmed  # warmed before it was swapped in


def test_earcons_acknowledge_the_end_of_speech_and_mark_an_error(
    start: Start, tmp_path: Path
) -> None:
    from konak.daemon.feedback import EARCONS

    sink = RecordingSink()
    config = settings(tmp_path, tts={"earcons": True})
    _daemon, events, source = start(FakeStt(""), FakeHub(), config=config, sink=sink)
    source.feed(command())
    events.wait_ends(1)
    ack, error = EARCONS["ack"].size, EARCONS["error"].size
    assert sink.played[:2] == [ack, error]
    assert len(sink.played) == 3  # then the apology, one sentence


def test_a_complete_command_ends_after_a_short_pause_and_an_incomplete_one_waits(
    start: Start, tmp_path: Path
) -> None:
    config = settings(tmp_path, vad={"end_silence_seconds": 0.7})
    # The partial result is the whole command once 1.2 s of speech were fed; before
    # that, "turn".
    stt = FakeStt(
        "turn on the kitchen light", "turn on the kitchen light", partial_after_seconds=1.2
    )
    _daemon, events, source = start(stt, FakeHub(), config=config)
    source.feed(command(speech_seconds=1.2, silence_seconds=0.0))
    assert stt.partial_complete.wait(10)
    source.feed(chunks(0, 1.0))
    events.wait_ends(1)
    source.feed(chunks(0, 1.0))
    # A comma pause of 0.4 s before the command is complete does not end it.
    source.feed(np.concatenate([chunks(3000, 0.16), chunks(0, 0.24), chunks(1000, 0.4)]))
    source.feed(np.concatenate([chunks(0, 0.4), chunks(1000, 0.8), chunks(0, 1.0)]))
    events.wait_ends(2)
    quick, paused = (
        next(e.data for e in events.events if e.type == "vad-end" and e.turn_id == turn)
        for turn in events.turns()
    )
    assert quick["quick"] is True
    assert quick["command_seconds"] < 1.9  # 0.24 + 1.2 s + about 0.3 s of pause
    assert paused["command_seconds"] > 2.0  # both parts of the command, not cut at the pause


def test_a_command_cut_short_by_shutdown_leaves_the_decoder_ready_for_the_next_turn(
    start: Start,
) -> None:
    stt = FakeStt("turn on the kitchen light")
    daemon, events, source = start(stt, FakeHub())
    source.feed(chunks(0, 0.4))
    source.feed(chunks(3000, 0.16))
    source.feed(chunks(1000, 0.8))  # still speaking
    source.wait_heard()
    events.wait_for(lambda e: e.type == "vad-start")
    daemon.stop()
    events.wait_ends(1)
    turn = only_run(events)
    assert events.snapshot(turn)[-3:] == [
        ("vad-end", {"endpoint": None, "command_seconds": 0.88}),
        ("stt-end", {"interrupted": True}),
        ("run-end", {"interrupted": True}),
    ]
    assert not stt.in_utterance


@dataclass
class OutboxHub(FakeHub):
    """The hub port writing each intent to a real outbox first, as the daemon's does."""

    outbox: Outbox | None = None

    def send(self, intent: Intent) -> None:
        assert self.outbox is not None
        self.outbox.put(intent.turn_id, intent.topic, intent.to_payload(), intent.expires_at)
        super().send(intent)


@dataclass
class FullDiskOnce(FakeHub):
    """The hub port whose first write fails as the outbox's does on a full disk."""

    full: bool = True

    def send(self, intent: Intent) -> None:
        if self.full:
            self.full = False
            raise QueueError(f"cannot queue intent {intent.turn_id}: database or disk is full")
        super().send(intent)


def full_disk_turn(text: str) -> list[Any]:
    return [
        *head(),
        *heard("turn on the kitchen light"),
        TURN_ON,
        ("hub-start", {"queued": 1}),
        ("hub-end", {"error": "queue_failed"}),
        ("error", {"code": "queue_failed", "message": text}),
        *spoken("Sorry, I could not send that to the hub."),
        ("run-end", {}),
    ]


def two_turns_the_first_on_a_full_disk(
    start: Start, hub: FakeHub, space_back: Callable[[], None]
) -> str:
    """Two commands; the disk is full for the first, ``space_back`` ends that. Checks the
    first turn failed with queue_failed, only the second was sent, the daemon runs on;
    returns the second turn's id."""
    daemon, events, source = start(FakeStt(*["turn on the kitchen light"] * 2), hub)
    source.feed(command())
    events.wait_ends(1)
    space_back()
    source.feed(chunks(0, 2.0))
    source.feed(command())
    events.wait_ends(2)
    first, second = events.turns()
    full = f"cannot queue intent {first}: database or disk is full"
    assert events.snapshot(first) == full_disk_turn(full)
    assert [i.turn_id for i in hub.sent] == [second]
    assert not daemon.stopping
    return second


def test_an_outbox_that_cannot_write_fails_that_turn_and_the_next_turn_works(
    start: Start,
) -> None:
    # The write error injected at the hub port, as the outbox raises it on a full disk.
    two_turns_the_first_on_a_full_disk(start, FullDiskOnce(), lambda: None)


def test_a_full_disk_under_the_outbox_fails_that_turn_keeps_the_queue_and_the_next_works(
    start: Start, tiny_tmpfs: Path
) -> None:
    outbox = Outbox(tiny_tmpfs / "queue.sqlite3")
    outbox.put("t-queued-before-1", "t", b"1" * 300)
    outbox.put("t-queued-before-2", "t", b"2" * 300)
    filler = fill_disk(tiny_tmpfs)

    second = two_turns_the_first_on_a_full_disk(start, OutboxHub(outbox=outbox), filler.unlink)

    queued = []
    while (item := outbox.head()) is not None:
        queued.append(item.turn_id)
        outbox.remove(item.seq)
    assert queued == ["t-queued-before-1", "t-queued-before-2", second]
    outbox.close()

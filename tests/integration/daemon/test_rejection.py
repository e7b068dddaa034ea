"""Speech that is not for the device yields no intent."""

from __future__ import annotations

import pytest

from konak.devtools.probe import ProbeError
from konak.protocol import Kind

from .conftest import Listen, RunningDaemon, Speech, Wav, command

pytestmark = pytest.mark.integration

PARAGRAPH = (
    "The history of the river town goes back many centuries. Merchants traveled along the "
    "water carrying salt, grain and wool to the markets in the south. In the spring the "
    "floods would cover the lower fields, and the farmers moved their animals to the hills. "
    "Today the old bridge is a museum, and visitors walk along the banks in the evening, "
    "watching the boats and talking about the weather and their plans for the summer."
)


def test_a_twenty_second_paragraph_without_the_wake_word_wakes_nothing(
    listen: Listen,
    run_daemon: RunningDaemon,
    wav: Wav,
    speech: Speech,
) -> None:
    hub = listen()
    assert speech(PARAGRAPH).size / 16_000 >= 20
    daemon, log = run_daemon(source=wav(1.0, PARAGRAPH, 1.0))
    status = hub.next(timeout=30)  # the daemon's retained online status comes first
    assert status.topic.endswith("/status")
    assert daemon.source_done.wait(60)
    assert log.types() == []
    kinds = set()
    while True:
        try:
            kinds.add(hub.next(timeout=0.5).topic.rsplit("/", 1)[1])
        except ProbeError:
            break
    assert kinds <= {"status"}


def test_an_out_of_grammar_command_after_the_wake_word_gets_no_intent_but_an_apology(
    listen: Listen, run_daemon: RunningDaemon, wav: Wav
) -> None:
    hub = listen(Kind.INTENT)
    _daemon, log = run_daemon(source=wav(*command("tell me a joke about penguins.")))
    log.wait_for(lambda e: e.type == "run-end")
    assert log.types() == [
        "run-start", "wake-start", "wake-end", "stt-start", "vad-start", "vad-end", "stt-end",
        "error", "tts-start", "tts-end", "run-end",
    ]  # fmt: skip
    error = next(e for e in log.events if e.type == "error")
    assert error.data == {"code": "not_understood"}
    spoken = next(e for e in log.events if e.type == "tts-end")
    assert spoken.data["text"] == "Sorry, I didn't catch that."
    with pytest.raises(ProbeError):
        hub.next(timeout=1.0)

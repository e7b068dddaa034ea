"""The speaker: every playback completes, also when stopped or dropped."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from konak.daemon.audio import Samples
from konak.daemon.feedback import Speaker

from .fakes import RecordingSink


class Voice:
    def sentences(self, text: str) -> Iterator[tuple[Samples, int]]:
        for _ in text.split(". "):
            yield np.zeros(100, np.int16), 22_050


def test_stop_completes_the_playing_and_the_queued_playbacks_as_interrupted() -> None:
    sink = RecordingSink(gated=True)
    speaker = Speaker(sink, Voice(), earcons=True)
    done: list[str] = []
    playing = speaker.say("One. Two. Three.", on_done=lambda p: done.append("first"))
    queued = speaker.say("Four.", on_done=lambda p: done.append("second"))
    assert sink.playing.wait(5)
    speaker.stop()
    sink.release()
    assert playing.wait(5)
    assert queued.wait(5)
    assert (playing.interrupted, playing.sentences) == (True, 1)
    assert (queued.interrupted, queued.sentences) == (True, 0)
    assert sorted(done) == ["first", "second"]
    assert speaker.idle.wait(5)
    speaker.close()


@pytest.mark.expect_error_log(match="playback failed")
def test_a_failing_voice_completes_the_playback_with_its_error() -> None:

    class Broken:
        def sentences(self, text: str) -> Iterator[tuple[Samples, int]]:
            raise OSError("no voice")

    speaker = Speaker(RecordingSink(), Broken(), earcons=False)
    playback = speaker.say("Hello.")
    assert playback.wait(5)
    assert playback.error == "OSError: no voice"
    assert speaker.idle.wait(5)
    speaker.close()

"""Endpointing decisions, with a fake speech probability per frame."""

from __future__ import annotations

import numpy as np

from konak.daemon.audio import CHUNK_SAMPLES, Samples
from konak.daemon.vad import Endpoint, Endpointer


class ScriptedVad:
    """Speech where the frame's first sample is non-zero; records resets."""

    def __init__(self) -> None:
        self.resets = 0

    def __call__(self, frame: Samples) -> float:
        return 1.0 if frame[0] else 0.0

    def reset(self) -> None:
        self.resets += 1


def _audio(*spans: tuple[bool, float]) -> Samples:
    parts = [np.full(round(s * 16_000), 1000 if speech else 0, np.int16) for speech, s in spans]
    return np.concatenate(parts)


def _run(endpointer: Endpointer, audio: Samples) -> list[Endpoint]:
    states = []
    for i in range(0, audio.size, CHUNK_SAMPLES):
        states.append(endpointer.process(audio[i : i + CHUNK_SAMPLES]))
        if states[-1] not in (Endpoint.WAITING, Endpoint.SPEAKING):
            break
    return states


def _endpointer() -> Endpointer:
    return Endpointer(
        ScriptedVad(),
        threshold=0.5,
        end_silence_seconds=0.7,
        max_command_seconds=5.0,
        no_speech_timeout_seconds=2.0,
    )


def test_a_command_ends_after_the_configured_silence_not_at_a_comma_pause() -> None:
    audio = _audio((False, 0.2), (True, 1.0), (False, 0.3), (True, 1.0), (False, 1.0))
    states = _run(_endpointer(), audio)
    assert states[-1] is Endpoint.END
    assert len(states) * CHUNK_SAMPLES / 16_000 > 2.5  # past the 0.3 s comma pause


def test_nobody_speaking_after_the_wake_word_times_out() -> None:
    states = _run(_endpointer(), _audio((False, 3.0)))
    assert states[-1] is Endpoint.NO_SPEECH
    assert set(states[:-1]) == {Endpoint.WAITING}


def test_a_command_that_never_pauses_is_cut_at_the_maximum_length() -> None:
    assert _run(_endpointer(), _audio((True, 6.0)))[-1] is Endpoint.TOO_LONG


def test_reset_starts_a_new_command_and_resets_the_model() -> None:
    endpointer = _endpointer()
    _run(endpointer, _audio((True, 1.0), (False, 1.0)))
    endpointer.reset()
    assert not endpointer.speech_seen
    assert endpointer.process(np.zeros(CHUNK_SAMPLES, np.int16)) is Endpoint.WAITING


def test_the_pause_after_the_wake_words_tail_does_not_end_the_command() -> None:
    endpointer = _endpointer()
    endpointer.reset(skip_tail_seconds=0.8)
    audio = _audio((True, 0.3), (False, 0.9), (True, 1.0), (False, 1.0))
    states = _run(endpointer, audio)
    assert states[-1] is Endpoint.END
    assert len(states) * CHUNK_SAMPLES / 16_000 > 2.0  # after the command, not the tail


def test_a_command_run_on_from_the_wake_word_counts_as_speech_after_the_tail_limit() -> None:
    endpointer = _endpointer()
    endpointer.reset(skip_tail_seconds=0.5)
    states = _run(endpointer, _audio((True, 1.5), (False, 1.0)))
    assert states[-1] is Endpoint.END

"""Voice activity detection with silero v6 (ONNX, run directly) and command endpointing."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from konak.daemon.audio import RATE_HZ, Samples
from konak.daemon.onnx_session import onnx_session

FRAME_SAMPLES: Final = 512
# The pause that ends a command once the decoder's partial result is a complete command.
QUICK_END_SILENCE_SECONDS: Final = 0.25
CONTEXT_SAMPLES: Final = 64


class SpeechProbability(Protocol):
    """The probability that each 32 ms frame (512 samples at 16 kHz) is speech."""

    def __call__(self, frame: Samples) -> float: ...

    def reset(self) -> None: ...


class SileroVad:
    """silero VAD v6: input [1, 64 + 512], state [2, 1, 128], sr."""

    def __init__(self, path: Path) -> None:
        self._session: Any = onnx_session(path, what="the VAD model")
        self._sr = np.array(RATE_HZ, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, np.float32)

    def __call__(self, frame: Samples) -> float:
        audio = frame.astype(np.float32) / 32768.0
        x = np.concatenate([self._context, audio])[None, :]
        out, self._state = self._session.run(
            None, {"input": x, "state": self._state, "sr": self._sr}
        )
        self._context = audio[-CONTEXT_SAMPLES:]
        return float(np.asarray(out).reshape(-1)[0])


class Endpoint(enum.Enum):
    """What the endpointer decided after a chunk."""

    WAITING = "waiting"  # no speech yet
    SPEAKING = "speaking"
    END = "end"  # enough silence after speech
    TOO_LONG = "too_long"  # the command hit its maximum length
    NO_SPEECH = "no_speech"  # nobody spoke after the wake word


class Endpointer:
    """Finds the end of a command: speech, then ``end_silence_seconds`` of silence."""

    def __init__(
        self,
        vad: SpeechProbability,
        *,
        threshold: float,
        end_silence_seconds: float,
        max_command_seconds: float,
        no_speech_timeout_seconds: float,
    ) -> None:
        self.vad = vad
        self.threshold = threshold
        self.end_silence_seconds = end_silence_seconds
        self.max_command_seconds = max_command_seconds
        self.no_speech_timeout_seconds = no_speech_timeout_seconds
        self.reset()

    def reset(self, *, skip_tail_seconds: float = 0.0) -> None:
        """Start listening for a new command. With ``skip_tail_seconds``, speech at the
        very start (the wake word's tail) does not count until the first pause, for at
        most that long, so the pause after the wake word does not end the command."""
        self.vad.reset()
        self._pending = np.zeros(0, np.int16)
        self.speech_frames: list[bool] = []  # every frame seen since reset, primed ones first
        self._elapsed = 0.0
        self._silence = 0.0
        self._speech_seen = False
        self._tail_left = skip_tail_seconds
        self._end_silence = self.end_silence_seconds

    def quick_end(self, silence_seconds: float) -> None:
        """What was said so far is a complete command: end after ``silence_seconds`` of
        silence instead of the configured pause (until the next reset)."""
        self._end_silence = min(self.end_silence_seconds, silence_seconds)

    @property
    def quick(self) -> bool:
        """Whether :meth:`quick_end` shortened the pause for this command."""
        return self._end_silence < self.end_silence_seconds

    @property
    def speech_seen(self) -> bool:
        """Whether any speech was heard since the last reset."""
        return self._speech_seen

    def prime(self, samples: Samples) -> None:
        """Run the VAD over audio from before the command (the pre-roll, which holds the
        wake word): its frames are recorded in :attr:`speech_frames` but do not count
        towards the endpoint."""
        self._pending = np.concatenate([self._pending, samples])
        while self._pending.size >= FRAME_SAMPLES:
            frame, self._pending = self._pending[:FRAME_SAMPLES], self._pending[FRAME_SAMPLES:]
            self.speech_frames.append(self.vad(frame) >= self.threshold)

    def process(self, samples: Samples) -> Endpoint:
        """Feed audio; returns the endpointing state after it."""
        self._pending = np.concatenate([self._pending, samples])
        frame_seconds = FRAME_SAMPLES / RATE_HZ
        while self._pending.size >= FRAME_SAMPLES:
            frame, self._pending = self._pending[:FRAME_SAMPLES], self._pending[FRAME_SAMPLES:]
            self._elapsed += frame_seconds
            speech = self.vad(frame) >= self.threshold
            self.speech_frames.append(speech)
            if self._tail_left > 0:
                self._tail_left = self._tail_left - frame_seconds if speech else 0.0
                if speech and self._tail_left > 0:
                    continue
            if speech:
                self._speech_seen = True
                self._silence = 0.0
            else:
                self._silence += frame_seconds
        if self._speech_seen and self._silence >= self._end_silence:
            return Endpoint.END
        if self._elapsed >= self.max_command_seconds:
            return Endpoint.TOO_LONG if self._speech_seen else Endpoint.NO_SPEECH
        if not self._speech_seen and self._elapsed >= self.no_speech_timeout_seconds:
            return Endpoint.NO_SPEECH
        return Endpoint.SPEAKING if self._speech_seen else Endpoint.WAITING

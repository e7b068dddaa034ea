"""Audio in and out: 16 kHz mono 16-bit inside, resampled at the edges.

Sources yield :class:`AudioChunk` objects of 80 ms (the wake word engine's step);
sinks take whole utterances (a sentence of TTS, an earcon) at any rate.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from konak.daemon.errors import AudioError

if TYPE_CHECKING:  # the engines import this module; settings pull in the wire contract
    from konak.daemon.settings import AudioSettings

logger = logging.getLogger(__name__)

RATE_HZ: Final = 16_000
CHUNK_SAMPLES: Final = 1280  # 80 ms, openWakeWord's step
SINK_RATE_HZ: Final = 22_050
STDIN_POLL_SECONDS: Final = 0.2  # a silent stdin still lets signals and close() through
PA_INPUT_OVERFLOWED: Final = -9981  # PortAudio's paInputOverflowed

Samples = npt.NDArray[np.int16]


@dataclass(frozen=True)
class AudioChunk:
    """80 ms of 16 kHz mono audio and its position in the stream."""

    samples: Samples
    start_seconds: float


def resample(samples: Samples, from_hz: int, to_hz: int) -> Samples:
    """Linear-interpolation resampling of 16-bit mono audio."""
    if from_hz == to_hz or samples.size == 0:
        return samples
    n_out = round(samples.size * to_hz / from_hz)
    x_out = np.arange(n_out, dtype=np.float64) * (from_hz / to_hz)
    out = np.interp(x_out, np.arange(samples.size, dtype=np.float64), samples.astype(np.float64))
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def read_wav(path: Path) -> tuple[Samples, int]:
    """A 16-bit PCM WAV file as mono samples and its rate."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise AudioError(f"{path}: only 16-bit PCM WAV is supported")
            frames = wav.readframes(wav.getnframes())
            channels, rate = wav.getnchannels(), wav.getframerate()
    except EOFError as exc:  # raised with no message
        what = "is empty" if path.stat().st_size == 0 else "ends inside its header"
        raise AudioError(f"{path}: cannot read WAV: the file {what}") from exc
    except OSError as exc:
        raise AudioError(f"{path}: cannot read WAV: {exc.strerror or exc}") from exc
    except wave.Error as exc:
        raise AudioError(f"{path}: cannot read WAV: {exc}") from exc
    data = np.frombuffer(frames, dtype="<i2")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return data.astype(np.int16), rate


def write_wav(path: Path, samples: Samples, rate_hz: int) -> None:
    """Write mono 16-bit samples as a WAV file."""
    # The file is opened here, not by wave: a Wave_write whose own open() failed still
    # runs its __del__, which prints a second traceback ("Exception ignored ...").
    with path.open("wb") as fh, wave.open(fh, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate_hz)
        wav.writeframes(samples.astype("<i2").tobytes())


def chunked(samples: Samples, start_seconds: float = 0.0) -> Iterator[AudioChunk]:
    """Cut 16 kHz samples into 80 ms chunks (the last one padded with silence)."""
    for offset in range(0, samples.size, CHUNK_SAMPLES):
        part = samples[offset : offset + CHUNK_SAMPLES]
        if part.size < CHUNK_SAMPLES:
            part = np.concatenate([part, np.zeros(CHUNK_SAMPLES - part.size, np.int16)])
        yield AudioChunk(part, start_seconds + offset / RATE_HZ)


class AudioSource(Protocol):
    """Yields 80 ms chunks until the audio ends or :meth:`close` is called.

    A source whose ``live`` attribute is true produces audio in real time (a microphone):
    :class:`konak.daemon.capture.Capture` reads it from its own thread so it never waits.
    """

    def chunks(self) -> Iterator[AudioChunk]: ...

    def close(self) -> None: ...


class AudioSink(Protocol):
    """Plays (or records) whole utterances."""

    def play(self, samples: Samples, rate_hz: int) -> None: ...

    def close(self) -> None: ...


class FileSource:
    """A WAV file (any rate) or raw s16le file at ``rate_hz``."""

    def __init__(self, path: Path, rate_hz: int = RATE_HZ, *, realtime: bool = False) -> None:
        if path.is_dir():
            raise AudioError(f"audio source file {path} is a directory, not a file")
        if not path.exists():
            raise AudioError(f"audio source file {path} does not exist")
        if path.suffix.lower() == ".wav":
            data, rate = read_wav(path)
        else:
            data, rate = np.fromfile(path, dtype="<i2").astype(np.int16), rate_hz
        self.samples = resample(data, rate, RATE_HZ)
        self.realtime = realtime
        self.live = realtime
        self._closed = threading.Event()

    def chunks(self) -> Iterator[AudioChunk]:
        started = time.monotonic()
        for chunk in chunked(self.samples):
            if self.realtime:
                # Paced like a microphone: each chunk is due when its audio has been "heard".
                due = started + chunk.start_seconds + CHUNK_SAMPLES / RATE_HZ
                if self._closed.wait(max(0.0, due - time.monotonic())):
                    return
            if self._closed.is_set():
                return
            yield chunk

    def close(self) -> None:
        self._closed.set()


class StdinSource:
    """Raw s16le mono audio at ``rate_hz`` on standard input."""

    live = True  # a pipe from arecord or a network stream does not wait for us

    def __init__(self, rate_hz: int = RATE_HZ, stream: IO[bytes] | None = None) -> None:
        self.rate_hz = rate_hz
        self.stream = stream if stream is not None else sys.stdin.buffer
        self._closed = False

    def chunks(self) -> Iterator[AudioChunk]:
        need = round(CHUNK_SAMPLES * self.rate_hz / RATE_HZ) * 2
        position = 0.0
        while not self._closed:
            data = self._read(need)
            if not data:
                return
            samples = resample(
                np.frombuffer(data[: len(data) // 2 * 2], "<i2"), self.rate_hz, RATE_HZ
            )
            yield from chunked(samples.astype(np.int16), position)
            position += samples.size / RATE_HZ

    def _read(self, need: int) -> bytes:
        """Up to ``need`` bytes; empty at the end or after :meth:`close`.

        A pipe is polled rather than read blocking, so the main thread keeps returning
        to Python: signal handlers (SIGTERM, SIGHUP) run even while nobody speaks.
        """
        try:
            fd = self.stream.fileno()
        except OSError:  # an in-memory stream (io.UnsupportedOperation)
            return self.stream.read(need)
        data = bytearray()
        while len(data) < need and not self._closed:
            ready, _, _ = select.select([fd], [], [], STDIN_POLL_SECONDS)
            if ready:
                got = os.read(fd, need - len(data))
                if not got:
                    break
                data += got
        return bytes(data)

    def close(self) -> None:
        self._closed = True


class SilentSource:
    """No microphone: yields nothing; the daemon still serves the hub (announcements)."""

    def chunks(self) -> Iterator[AudioChunk]:
        return iter(())

    def close(self) -> None:
        """Nothing to release."""


def _find_device(pa: Any, name: str | None, want_input: bool) -> int | None:
    if name is None:
        return None
    key = "maxInputChannels" if want_input else "maxOutputChannels"
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        if info.get(key, 0) > 0 and name in str(info.get("name", "")):
            return index
    kind = "input" if want_input else "output"
    raise AudioError(f"no audio {kind} device matching {name!r}")


def _open_stream(device: str | None, *, want_input: bool) -> tuple[Any, Any]:
    """A PortAudio 16-bit mono stream: the microphone at 16 kHz or the speaker at 22.05 kHz."""
    import pyaudio  # type: ignore[import-untyped]

    pa = pyaudio.PyAudio()
    try:
        index = _find_device(pa, device, want_input=want_input)
        direction: dict[str, Any] = (
            {"input": True, "input_device_index": index, "frames_per_buffer": CHUNK_SAMPLES}
            if want_input
            else {"output": True, "output_device_index": index}
        )
        rate = RATE_HZ if want_input else SINK_RATE_HZ
        stream = pa.open(rate=rate, channels=1, format=pyaudio.paInt16, **direction)
    except (OSError, AudioError) as exc:
        pa.terminate()
        what = "microphone" if want_input else "speaker"
        raise AudioError(f"cannot open the {what} {device or '(default)'}: {exc}") from exc
    return pa, stream


class PyAudioSource:
    """A microphone through PortAudio; opened at 16 kHz."""

    live = True

    def __init__(self, device: str | None = None) -> None:
        self._pa, self._stream = _open_stream(device, want_input=True)
        self._closed = False
        self.overflows = 0  # PortAudio's own input overflows (audio lost before we read it)

    def chunks(self) -> Iterator[AudioChunk]:
        position = 0.0
        while not self._closed:
            try:
                data = self._stream.read(CHUNK_SAMPLES, exception_on_overflow=True)
            except OSError as exc:
                if getattr(exc, "errno", None) != PA_INPUT_OVERFLOWED:
                    raise AudioError(f"the microphone failed: {exc}") from exc
                self.overflows += 1
                if self.overflows == 1 or self.overflows % 100 == 0:
                    logger.warning("microphone input overflowed (%d times)", self.overflows)
                continue
            yield AudioChunk(np.frombuffer(data, "<i2").astype(np.int16), position)
            position += CHUNK_SAMPLES / RATE_HZ

    def close(self) -> None:
        self._closed = True


class PyAudioSink:
    """A speaker through PortAudio."""

    def __init__(self, device: str | None = None) -> None:
        self._pa, self._stream = _open_stream(device, want_input=False)

    def play(self, samples: Samples, rate_hz: int) -> None:
        self._stream.write(resample(samples, rate_hz, SINK_RATE_HZ).tobytes())

    def close(self) -> None:
        self._stream.close()
        self._pa.terminate()


class WavSink:
    """Appends everything played to one WAV file (valid after every utterance)."""

    def __init__(self, path: Path, rate_hz: int = SINK_RATE_HZ) -> None:
        self.rate_hz = rate_hz
        self._lock = threading.Lock()
        try:
            self._fh = path.open("wb")  # open for the sink's life
        except OSError as exc:
            raise AudioError(f"cannot write the WAV sink {path}: {exc.strerror or exc}") from exc
        self._wav = wave.open(self._fh, "wb")  # noqa: SIM115 - as above; see write_wav
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate_hz)
        self._file = path

    def play(self, samples: Samples, rate_hz: int) -> None:
        with self._lock:
            # writeframes rewrites the header, so readers see a complete file.
            self._wav.writeframes(resample(samples, rate_hz, self.rate_hz).astype("<i2").tobytes())

    def close(self) -> None:
        with self._lock:
            self._wav.close()  # wave does not close a file it did not open
            self._fh.close()


class NullSink:
    """Discards audio."""

    def play(self, samples: Samples, rate_hz: int) -> None:
        """Nothing to play on."""

    def close(self) -> None:
        """Nothing to release."""


def open_source(settings: AudioSettings) -> AudioSource:
    """The configured audio source."""
    if settings.source == "file":
        assert settings.source_path is not None  # settings validated it
        return FileSource(settings.source_path, settings.source_rate_hz, realtime=settings.realtime)
    if settings.source == "stdin":
        return StdinSource(settings.source_rate_hz)
    if settings.source == "none":
        return SilentSource()
    return PyAudioSource(settings.input_device)


def open_sink(settings: AudioSettings) -> AudioSink:
    """The configured audio sink."""
    if settings.sink == "wav":
        assert settings.sink_path is not None  # settings validated it
        return WavSink(settings.sink_path)
    if settings.sink == "none":
        return NullSink()
    return PyAudioSink(settings.output_device)


def tone(frequency_hz: float, seconds: float, rate_hz: int = RATE_HZ) -> Samples:
    """A short sine tone with soft edges (earcons)."""
    t = np.arange(round(seconds * rate_hz)) / rate_hz
    envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    return (0.3 * 32767 * envelope * np.sin(2 * np.pi * frequency_hz * t)).astype(np.int16)

"""WAV files in and out: a failure is one AudioError or OSError with its reason, nothing
printed behind it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from konak.daemon.audio import FileSource, WavSink, read_wav, write_wav
from konak.daemon.errors import AudioError


def test_writing_a_wav_into_a_missing_folder_raises_once_and_leaves_no_unraisable_error(
    tmp_path: Path,
) -> None:
    # Before the fix, wave's half-built writer also printed "Exception ignored in
    # Wave_write.__del__" (pytest turns that unraisable exception into a failing warning).
    with pytest.raises(FileNotFoundError):
        write_wav(tmp_path / "missing" / "x.wav", np.zeros(160, np.int16), 16_000)


def test_a_wav_sink_in_a_missing_folder_is_an_audio_error_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"No such file or directory$"):
        WavSink(tmp_path / "missing" / "out.wav")


def test_a_written_wav_reads_back_and_a_sink_writes_a_valid_file(tmp_path: Path) -> None:
    samples = (np.arange(1600) % 100).astype(np.int16)
    write_wav(tmp_path / "a.wav", samples, 16_000)
    sink = WavSink(tmp_path / "b.wav", rate_hz=16_000)
    sink.play(samples, 16_000)
    sink.close()

    for name in ("a.wav", "b.wav"):
        back, rate = read_wav(tmp_path / name)
        assert rate == 16_000
        assert np.array_equal(back, samples)


def test_an_empty_or_truncated_wav_says_so(tmp_path: Path) -> None:
    empty, truncated = tmp_path / "empty.wav", tmp_path / "cut.wav"
    empty.write_bytes(b"")
    truncated.write_bytes(b"RIFF\x24\x00")
    with pytest.raises(AudioError, match=r"cannot read WAV: the file is empty$"):
        read_wav(empty)
    with pytest.raises(AudioError, match=r"cannot read WAV: the file ends inside its header$"):
        read_wav(truncated)


def test_a_directory_as_the_audio_file_is_named_as_a_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"is a directory, not a file$"):
        FileSource(tmp_path)
    with pytest.raises(AudioError, match=r"does not exist$"):
        FileSource(tmp_path / "nothing.wav")

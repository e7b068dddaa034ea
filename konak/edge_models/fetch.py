"""HTTP downloads that resume (Range), report progress, and hash files."""

from __future__ import annotations

import hashlib
import http.client
import logging
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, TextIO

from konak.edge_models.errors import SOURCE_UNREACHABLE, SourceError

logger = logging.getLogger(__name__)

CHUNK_BYTES: Final = 1 << 16
REDRAW_SECONDS: Final = 0.1
LOG_EVERY_SECONDS: Final = 5.0
USER_AGENT: Final = "konak-models/1"


def hash_file(path: Path) -> tuple[str, int]:
    """The sha256 (hex) and size of a file."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover - loop always returns


class Progress:
    """Bytes, rate and ETA: redrawn in place on a terminal, plain log lines otherwise."""

    def __init__(
        self, label: str, total: int | None, *, start: int = 0, stream: TextIO | None = None
    ) -> None:
        self.label = label
        self.total = total
        self.done = start
        self._start_bytes = start
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._t0 = time.monotonic()
        self._last_draw = 0.0
        self._last_log = self._t0

    def line(self) -> str:
        """The current progress as one line of text."""
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        rate = (self.done - self._start_bytes) / elapsed
        text = f"{self.label}: {_human(self.done)}"
        if self.total:
            text += f" / {_human(self.total)} ({100 * self.done / self.total:.0f}%)"
        text += f", {_human(rate)}/s"
        if self.total and rate > 0:
            text += f", ETA {max(self.total - self.done, 0) / rate:.0f} s"
        return text

    def update(self, n: int) -> None:
        """Account for ``n`` more bytes."""
        self.done += n
        now = time.monotonic()
        if self._tty and now - self._last_draw >= REDRAW_SECONDS:
            self._stream.write("\r\x1b[K" + self.line())
            self._stream.flush()
            self._last_draw = now
        elif not self._tty and now - self._last_log >= LOG_EVERY_SECONDS:
            logger.info("%s", self.line())
            self._last_log = now

    def finish(self) -> None:
        """Print the final line."""
        if self._tty:
            self._stream.write("\r\x1b[K" + self.line() + "\n")
            self._stream.flush()
        else:
            logger.info("%s", self.line())


@dataclass(frozen=True)
class DownloadSettings:
    """How URL downloads behave."""

    timeout_seconds: float = 30.0
    progress_stream: TextIO | None = None


def _unreachable(url: str, why: str) -> SourceError:
    return SourceError(f"{url}: {why}", code=SOURCE_UNREACHABLE)


def _open(url: str, start: int, settings: DownloadSettings) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})  # noqa: S310
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(  # noqa: S310
            request, timeout=settings.timeout_seconds
        )
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and start:  # our partial is as long as (or longer than) the file
            raise _RangeNotSatisfiable from exc
        raise _unreachable(url, f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _unreachable(url, f"cannot connect ({reason})") from exc
    return response


class _RangeNotSatisfiable(Exception):
    pass


def download(
    url: str,
    dest: Path,
    *,
    expected_size: int | None,
    label: str,
    settings: DownloadSettings | None = None,
) -> None:
    """Download ``url`` into ``dest``, resuming from what ``dest`` already holds.

    A dropped connection leaves ``dest`` in place so the next call resumes with a Range
    request; a server that ignores Range makes us start over.
    """
    settings = settings or DownloadSettings()
    if url.startswith("file:"):
        raise _unreachable(url, "file URLs are not a download source")
    start = dest.stat().st_size if dest.exists() else 0
    if expected_size is not None and start > expected_size:
        start = 0
    if expected_size is not None and start == expected_size:
        logger.info("%s: already downloaded (%d bytes)", label, start)
        return
    try:
        response = _open(url, start, settings)
    except _RangeNotSatisfiable:
        start = 0
        response = _open(url, 0, settings)
    with response:
        if start and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {start}-"):
                raise _unreachable(url, f"server answered an unexpected range: {content_range!r}")
            logger.info("%s: resuming at byte %d", label, start)
            mode = "ab"
        else:
            start = 0
            mode = "wb"
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else expected_size
        progress = Progress(label, total, start=start, stream=settings.progress_stream)
        with dest.open(mode) as out:
            _copy(response, out, progress, url)
        progress.finish()
    if length and length.isdigit() and progress.done < start + int(length):
        raise _unreachable(
            url, f"connection closed after {progress.done} of {total} bytes; the next pull resumes"
        )


def _copy(response: http.client.HTTPResponse, out: IO[bytes], progress: Progress, url: str) -> None:
    try:
        while chunk := response.read(CHUNK_BYTES):
            write_chunk(out, chunk)
            progress.update(len(chunk))
    except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
        out.flush()
        raise _unreachable(
            url, f"interrupted after {progress.done} bytes ({exc!r}); the next pull resumes"
        ) from exc


def write_chunk(out: IO[bytes], chunk: bytes) -> None:
    """Write one chunk (the seam where a full disk shows up as ENOSPC)."""
    out.write(chunk)

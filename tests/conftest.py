"""Fixtures shared by the whole suite: a real Mosquitto broker, MQTT probes, a guard that
fails a test during which an exception was logged, and the `konak` command run as a user
runs it."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from konak import cli
from konak.devtools.mosquitto import Credentials, Mosquitto
from konak.devtools.probe import MqttProbe

REPO = Path(__file__).resolve().parents[1]
KONAK = [sys.executable, "-m", "konak.cli"]  # the command line of `konak`, for Popen
# The models `make setup` fetched into the work tree (the Makefile exports the same path).
os.environ.setdefault("KONAK_MODELS_DIR", str(Path(__file__).resolve().parents[1] / ".models"))

# Shared, noisy machines: no per-example deadline; timing belongs in `make bench`.
settings.register_profile(
    "konak", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=200
)
settings.load_profile("konak")


Ran = subprocess.CompletedProcess[str]


def konak(
    *argv: str,
    env: dict[str, str] | None = None,
    input: str | None = None,
    module: str = "konak.cli",
    timeout: float = 120,
) -> Ran:
    """Run ``konak ARGV`` as a user would, in a child process (``module``: another of the
    project's commands, run as ``python -m MODULE``); its exit status and output."""
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        capture_output=True,
        text=True,
        input=input,
        env=env,  # None: this process's environment
        cwd=REPO,
        timeout=timeout,
        check=False,
    )


KonakMain = Callable[..., Ran]


@pytest.fixture
def konak_main(capsys: pytest.CaptureFixture[str]) -> KonakMain:
    """Run ``konak ARGV`` in this process (``main``: another entry point taking argv); its
    exit status and what it printed, as :func:`konak` gives them."""

    def run(*argv: str, main: Callable[[Sequence[str]], int] = cli.main) -> Ran:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(argv), code, out, err)

    return run


def one_error_line(done: Ran, *, prefix: str | None = None) -> str:
    """The one error line of a command that failed cleanly: exit status 1, no traceback, and
    one line on stderr (with ``prefix``, one line starting with it among the logs)."""
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr, done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    if prefix is not None:
        lines = [line for line in lines if line.startswith(prefix)]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    """A real Mosquitto 2 on a free loopback port with authentication on."""
    with Mosquitto() as running:
        yield running


@pytest.fixture
def dynsec_broker() -> Iterator[Mosquitto]:
    """A real Mosquitto 2 whose device identities and roles change at run time (its dynamic
    security plugin)."""
    with Mosquitto(dynsec=True) as running:
        yield running


ProbeFactory = Callable[..., MqttProbe]


@pytest.fixture
def mqtt_probe(broker: Mosquitto) -> Iterator[ProbeFactory]:
    """Connect MQTT probes to the broker (admin credentials unless given); all are closed
    after the test."""
    probes: list[MqttProbe] = []

    def connect(credentials: Credentials | None = None, **kwargs: object) -> MqttProbe:
        probe = MqttProbe(broker.host, broker.port, credentials or broker.admin, **kwargs)  # type: ignore[arg-type]
        probes.append(probe)
        return probe.connect()

    yield connect
    for probe in probes:
        probe.close()


class _LoggedExceptions(logging.Handler):
    """Keeps every ERROR (or worse) record that carries exception info, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


def _exception_line(record: logging.LogRecord) -> str:
    """``Type: text`` of the exception; `match=` is searched in this and the message."""
    exc_type, exc, _ = record.exc_info if isinstance(record.exc_info, tuple) else (None,) * 3
    if exc_type is None:
        return "no exception (logged outside an except block)"
    return f"{exc_type.__name__}: {exc}"


def _describe(record: logging.LogRecord) -> str:
    """One line: logger, message, exception and the line that raised it."""
    where = ""
    if isinstance(record.exc_info, tuple) and record.exc_info[2] is not None:
        raised = traceback.extract_tb(record.exc_info[2])[-1]
        where = f" (raised at {raised.filename}:{raised.lineno} in {raised.name})"
    return f"{record.name}: {record.getMessage()} -- {_exception_line(record)}{where}"


@pytest.fixture(autouse=True)
def fail_on_logged_exceptions(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test during which an ERROR record with exception info was logged, from any thread,
    unless it is marked ``@pytest.mark.expect_error_log`` (with ``match=`` a regex every such
    record's message or ``Type: text`` of its exception must contain)."""
    recorder = _LoggedExceptions()
    root = logging.getLogger()
    # Records stop at a logger that does not propagate, and at a root level above ERROR.
    watched = [root] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in watched:
        logger.addHandler(recorder)
    saved_level = root.level
    lowered = saved_level > logging.ERROR
    if lowered:
        root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger in watched:
            logger.removeHandler(recorder)
        if lowered:
            root.setLevel(saved_level)
    # Only what was emitted while the test ran counts: later records no longer reach `recorder`.
    recorded = list(recorder.records)
    marker = request.node.get_closest_marker("expect_error_log")
    if marker is not None:
        if marker.args or set(marker.kwargs) - {"match"}:
            pytest.fail("expect_error_log takes only match=<regex>", pytrace=False)
        pattern = marker.kwargs.get("match")
        if pattern is None:
            return
        recorded = [
            record
            for record in recorded
            if not re.search(pattern, f"{record.getMessage()}\n{_exception_line(record)}")
        ]
    if recorded:
        lines = "\n".join(f"  {_describe(record)}" for record in recorded)
        expectation = (
            f"records not matching expect_error_log(match={marker.kwargs['match']!r})"
            if marker is not None
            else "exceptions (mark the test @pytest.mark.expect_error_log(match=...) if expected)"
        )
        pytest.fail(f"{len(recorded)} logged {expectation}:\n{lines}", pytrace=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL 16 with pgvector (pgserver) in a fresh data folder for the session;
    yields the server's DSN; stopped and removed at the end. Tests take ``postgres_dsn`` (a
    database of their own) rather than sharing its default database."""
    import shutil
    import tempfile
    import warnings

    # Under /tmp, not pytest's 0700 tree: as root, pgserver runs PostgreSQL as its own user.
    data = Path(tempfile.mkdtemp(prefix="konak-postgres-"))
    try:
        with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set"
            warnings.simplefilter("ignore")
            import pgserver

            server = pgserver.get_server(data, cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def postgres_dsn(postgres_server: str, request: pytest.FixtureRequest) -> str:
    """A new, empty database on the session's PostgreSQL server, for this test alone."""
    import psycopg
    from psycopg import sql

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + os.urandom(4).hex()
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return psycopg.conninfo.make_conninfo(postgres_server, dbname=name)


@contextlib.contextmanager
def mounted_tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """A filesystem of ``size`` (tmpfs's ``size=``) of its own at ``mount_point``, for a disk
    that fills up, unmounted after; skips the test where mounting needs a root it has not."""
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(
            "cannot mount a tmpfs here (needs root); a test at the write seam covers ENOSPC"
        )
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False).returncode != 0:
            # Busy (a test left a file open): detached now, gone once the file is closed.
            subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB filesystem of its own under tmp_path (see :func:`mounted_tmpfs`)."""
    with mounted_tmpfs(tmp_path / "tmpfs", "256k") as mount_point:
        yield mount_point


def fill_disk(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` with one file (delete it to give the space back)."""
    filler = folder / "filler"
    block = b"\0" * 4096
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler

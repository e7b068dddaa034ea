"""The reliability suite's scale, its fixtures and its report.

``make test`` runs every scenario at the quick scale (seconds each); ``make reliability``
sets ``KONAK_RELIABILITY=full`` for the real sizes (a 60 s broker outage, thousands of
intents, overload past the hub's saturation) and writes the table to
``bench/reliability.md``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from konak.devtools.mosquitto import Mosquitto

from .rig import Devices, HubProcess, Ledger, hub_config, recorder_pids

REPO = Path(__file__).resolve().parents[2]
COLUMNS = (
    "scenario",
    "sent",
    "answered",
    "executed",
    "dropped",
    "lost",
    "duplicated",
    "late",
    "unconfirmed",
    "recovery_s",
    "outcomes",
)


@dataclass(frozen=True)
class Scale:
    """How big each scenario is."""

    name: str
    devices: int
    intents: int  # per load phase
    rate: float  # intents per second offered by the whole fleet
    broker_down_seconds: float
    hub_kill_intents: int
    hub_kill_rate: float
    queued_on_device: int
    fault_seconds: float  # how long an MCP server stays hung or dead before it is found
    overload_rate: float  # 0: the overload scenario is not run
    overload_seconds: float


QUICK = Scale("quick", 3, 24, 20.0, 3.0, 60, 60.0, 5, 3.0, 0.0, 0.0)
FULL = Scale("full", 20, 400, 20.0, 60.0, 2000, 200.0, 50, 10.0, 1500.0, 10.0)


def scale_from_env() -> Scale:
    """``KONAK_RELIABILITY=full`` for the real sizes; quick otherwise."""
    return FULL if os.environ.get("KONAK_RELIABILITY") == "full" else QUICK


_rows: list[dict[str, Any]] = []


@pytest.fixture
def scale() -> Scale:
    """The scale of this run."""
    return scale_from_env()


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    """The harness broker with persistence (autosave on changes), as in production."""
    with Mosquitto(persistence=True) as running:
        yield running


@pytest.fixture
async def hub_process(
    broker: Mosquitto, tmp_path: Path
) -> AsyncIterator[Callable[..., HubProcess]]:
    """Make the test's ``konak hub run``; killed after the test if still running, with
    every recorder server it started."""
    made: list[HubProcess] = []

    def make(**kw: Any) -> HubProcess:
        hub = HubProcess(hub_config(tmp_path, broker, **kw), tmp_path, broker)
        made.append(hub)
        return hub

    yield make
    for hub in made:
        await hub.kill()
    for pid in recorder_pids(tmp_path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Ledger:
    """The test's ledger, named after the scenario."""
    return Ledger(request.node.name.removeprefix("test_"), tmp_path)


@pytest.fixture
def devices(broker: Mosquitto, tmp_path: Path, ledger: Ledger) -> Iterator[Callable[..., Devices]]:
    """Start in-process devices with ``devices(count)``; stopped after the test."""
    made: list[Devices] = []

    def make(count: int, prefix: str = "pi", queue_dir: Path | None = None) -> Devices:
        fleet = Devices(broker, tmp_path, ledger, count, prefix, queue_dir).start()
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:
        fleet.stop()


@pytest.fixture
def report() -> Callable[[dict[str, Any]], None]:
    """Add a scenario's figures to the run's table."""
    return _rows.append


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = []
        for column in COLUMNS:
            value = row.get(column)
            if column == "outcomes" and isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
            cells.append("-" if value is None else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the table; at the full scale, also write it to bench/reliability.md."""
    if not _rows:
        return
    scale = scale_from_env()
    lines = _table(_rows)
    terminalreporter.section(f"reliability ({scale.name} scale)")
    for line in lines:
        terminalreporter.write_line(line)
    if scale is FULL:
        out = REPO / "bench"
        out.mkdir(exist_ok=True)
        (out / "reliability.md").write_text("\n".join(lines) + "\n")
        terminalreporter.write_line(f"written to {out / 'reliability.md'}")

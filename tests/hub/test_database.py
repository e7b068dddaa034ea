"""A hub database that cannot be used stops ``konak hub run`` with one line naming the file
and what to do, and leaves the file as it was (issue 13: a corrupt hub database at start)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from konak.hub import database
from konak.hub.store import Store
from konak.protocol import Telemetry
from tests.conftest import konak, one_error_line

UNREADABLE = (
    "(not a readable SQLite database); "
    "restore it from a backup, or move it aside to start with an empty one"
)
NEWER = (
    f"has schema version {database.SCHEMA.version + 1}, newer than this release's "
    f"{database.SCHEMA.version}: run the release that wrote it, or restore a backup made by "
    "this one"
)


def not_sqlite(path: Path) -> None:
    path.write_text("[hub]\nthis was meant to be the config\n" * 50)


def truncated(path: Path) -> None:
    store = Store(path)
    for n in range(300):
        sample = Telemetry(tenant="acme", device="pi", uptime_seconds=n, cpu_percent=1, rss_bytes=1)
        store.add_telemetry(sample, float(n), retention_seconds=1e9, max_rows=1000)
    store.close()
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


def newer(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {database.SCHEMA.version + 1}")


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (not_sqlite, "cannot open the hub database {path}: file is not a database " + UNREADABLE),
        (truncated, "cannot open the hub database {path}: database disk image is malformed "
         + UNREADABLE),
        (newer, "the hub database {path} " + NEWER),
    ],
    ids=["not-sqlite", "truncated", "newer"],
)  # fmt: skip
def test_konak_hub_run_on_a_database_it_cannot_use_exits_with_one_line_and_writes_nothing(
    tmp_path: Path, damage: Callable[[Path], None], says: str
) -> None:
    path = tmp_path / "data" / "hub.sqlite3"
    path.parent.mkdir()
    damage(path)
    before = path.read_bytes()
    config = tmp_path / "hub.toml"
    config.write_text(f'[hub]\ndatabase_path = "{path}"\nhttp_port = 0\n')

    line = one_error_line(konak("hub", "run", "--config", str(config)))

    assert line == f"konak hub: {says.format(path=path)} [store_error]"
    assert path.read_bytes() == before
    assert {p.name for p in path.parent.iterdir()} <= {
        path.name,
        f"{path.name}-wal",
        f"{path.name}-shm",
    }

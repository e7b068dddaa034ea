"""Soak: half an hour of speech, paced like a microphone, into the real daemon, with the
real broker and the real hub answering through konak-home.

It counts what must never happen (audio chunks dropped by capture, turns that never
reach ``run-end``), the turns by outcome and by spoken line, and how the daemon's RSS
moves over hundreds of turns. ``konak bench --soak`` runs it in a child process of its
own (so the RSS measured is the daemon's) and writes bench/soak.json and bench/soak.md.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import queue
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from konak.bench.rig import DEVICE, LIGHTS, TENANT, broker_link, daemon_settings, models_dir
from konak.bench.soak_audio import (
    CHUNK_SECONDS,
    CLIP_CHUNKS,
    CountingSink,
    LoopingSource,
    SoakError,
    clips,
)
from konak.bench.soak_report import RSS_AFTER_TURNS, build, render_markdown
from konak.bench.stats import machine
from konak.daemon.events import Event

if TYPE_CHECKING:
    from konak.daemon.service import Daemon

logger = logging.getLogger(__name__)

DRAIN_SECONDS: Final = 60.0  # after the last line, how long a started turn may take to end
START_TIMEOUT_SECONDS: Final = 120.0
JOIN_SECONDS: Final = 30.0
PROGRESS_SECONDS: Final = 60.0
POLL_SECONDS: Final = 0.25


@dataclass
class TurnRecord:
    """What one turn did, from its events."""

    clip: int | None
    started_at: float
    ended_at: float | None = None
    error: str | None = None
    hub_outcome: str | None = None
    interrupted: bool = False

    @property
    def outcome(self) -> str:
        """The error code, else the hub's (or the local skill's) outcome."""
        if self.error is not None:
            return self.error
        if self.hub_outcome is not None:
            return self.hub_outcome
        return "interrupted" if self.interrupted else "no_outcome"


@dataclass
class Tracker:
    """Turns from the daemon's events; ``add`` returns True when a turn ended."""

    source: LoopingSource
    turns: dict[str, TurnRecord] = field(default_factory=dict)
    ended: int = 0
    run_end_without_start: int = 0
    duplicate_run_end: int = 0

    def add(self, event: Event) -> bool:
        if event.type == "run-start":
            self.turns[event.turn_id] = TurnRecord(self.source.clip_at(event.at), event.at)
            return False
        turn = self.turns.get(event.turn_id)
        if turn is None:
            self.run_end_without_start += event.type == "run-end"
            return False
        if event.type == "error":
            turn.error = str(event.data.get("code"))
        elif event.type == "hub-end" and "outcome" in event.data:
            turn.hub_outcome = str(event.data["outcome"])
        elif event.type == "run-end":
            if turn.ended_at is not None:
                self.duplicate_run_end += 1
                return False
            turn.ended_at = event.at
            turn.interrupted = bool(event.data.get("interrupted"))
            self.ended += 1
            return True
        return False

    def open_turns(self) -> list[str]:
        """Turns started and not ended."""
        return [tid for tid, t in self.turns.items() if t.ended_at is None]


class LogCounter(logging.Handler):
    """Counts the daemon's warnings and errors and keeps the first few."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1
        if len(self.first) < 10:
            self.first.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def rss_mb() -> float:
    """This process's resident set size in MB."""
    import psutil  # type: ignore[import-untyped]

    rss: int = psutil.Process().memory_info().rss
    return round(rss / 2**20, 1)


@dataclass
class _Watch:
    """What the observer measures while the daemon runs."""

    tracker: Tracker
    rss_after_start: float = 0.0
    rss_after_turns: float | None = None
    rss_samples: list[tuple[int, float]] = field(default_factory=list)
    stopped_early: bool = False


def _observe(
    daemon: Daemon,
    thread: threading.Thread,
    source: LoopingSource,
    events: queue.SimpleQueue[Event],
    *,
    progress: bool,
) -> _Watch:
    """Follow the turns until the script has played and every started turn has ended
    (or :data:`DRAIN_SECONDS` passed); RSS after start, after 10 turns, at each turn's end."""
    if not source.started.wait(START_TIMEOUT_SECONDS):
        raise SoakError("the daemon never started listening")
    watch = _Watch(Tracker(source), rss_after_start=rss_mb())
    began = time.monotonic()
    next_progress = began + PROGRESS_SECONDS
    drain_until: float | None = None
    while True:
        try:
            event: Event | None = events.get(timeout=POLL_SECONDS)
        except queue.Empty:
            event = None
        if event is not None and watch.tracker.add(event):
            rss, ended = rss_mb(), watch.tracker.ended
            watch.rss_samples.append((ended, rss))
            if ended == RSS_AFTER_TURNS:
                watch.rss_after_turns = rss
        if not events.empty():
            continue
        now = time.monotonic()
        if not thread.is_alive() or daemon.stopped.is_set():
            watch.stopped_early = True
            logger.error("the daemon stopped during the soak")
            return watch
        if progress and now >= next_progress:
            next_progress += PROGRESS_SECONDS
            print(
                f"soak: {(now - began) / 60:.1f} of {source.script_seconds / 60:.1f} min, "
                f"{len(watch.tracker.turns)} turns started, {watch.tracker.ended} ended, "
                f"{daemon.capture.stats.dropped_chunks} chunks dropped, RSS {rss_mb()} MB",
                flush=True,
            )
        if source.script_done.is_set():
            drain_until = drain_until or now + DRAIN_SECONDS
            if not watch.tracker.open_turns() or now >= drain_until:
                return watch


def run_soak(audio_seconds: float, cache: Path, *, progress: bool = True) -> dict[str, Any]:
    """Play ``audio_seconds`` of the script (whole lines) into the daemon, with the real
    broker and hub; the report (:func:`~konak.bench.soak_report.build`)."""
    import psutil

    from konak.bench.turns import HubWatch
    from konak.daemon.engines import load_engines
    from konak.daemon.service import Daemon
    from konak.devtools.localhub import local_hub
    from konak.devtools.mosquitto import Mosquitto
    from konak.protocol import Kind, subscription

    models = models_dir()
    source = LoopingSource(clips(cache, models), audio_seconds)
    if not source.playlist:
        raise SoakError(f"the soak needs at least {CLIP_CHUNKS * CHUNK_SECONDS:.2f} s of audio")
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    began = time.monotonic()
    counter = LogCounter()
    logging.getLogger("konak").addHandler(counter)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="konak-soak-") as tmp,
            Mosquitto() as broker,
            local_hub(Path(tmp), broker, TENANT, LIGHTS),
        ):
            with HubWatch(broker) as hub_watch:
                hub_watch.subscribe(subscription(Kind.REPLY, tenant=TENANT, device=DEVICE))
                hub_watch.warm_up()
            settings = daemon_settings(
                Path(tmp),
                models,
                broker_link(broker),
            )
            sink = CountingSink()
            daemon = Daemon(settings, load_engines(settings), source, sink)
            events: queue.SimpleQueue[Event] = queue.SimpleQueue()
            daemon.bus.subscribe(events.put)
            thread = threading.Thread(target=daemon.run, name="soak-daemon", daemon=True)
            process = psutil.Process()
            cpu0, wall0 = sum(process.cpu_times()[:2]), time.monotonic()
            thread.start()
            try:
                watch = _observe(daemon, thread, source, events, progress=progress)
                rss_end = rss_mb()
                cpu = (sum(process.cpu_times()[:2]) - cpu0) / (time.monotonic() - wall0)
                capture = daemon.capture.stats
                outbox = daemon.figures()
                open_turns = watch.tracker.open_turns()
            finally:
                daemon.stop()
                thread.join(JOIN_SECONDS)
            while not events.empty():  # what shutdown did to turns still open
                watch.tracker.add(events.get())
    finally:
        logging.getLogger("konak").removeHandler(counter)
    return build(
        started_at=started_at,
        machine=machine(),
        source=source,
        tracker=watch.tracker,
        open_turns=open_turns,
        capture=capture,
        rss={
            "after_start_mb": watch.rss_after_start,
            "after_10_turns_mb": watch.rss_after_turns,
            "end_mb": rss_end,
            "samples": watch.rss_samples,
        },
        cpu_percent_of_one_core=round(100 * cpu, 1),
        sink={"plays": sink.plays, "seconds": round(sink.seconds, 1)},
        outbox={
            "queue_depth": outbox.queue_depth,
            "dead_letters": outbox.dead_letters,
            "expired_intents": outbox.expired_intents,
        },
        log={
            "warnings": counter.counts["WARNING"],
            "errors": counter.counts["ERROR"] + counter.counts["CRITICAL"],
            "first": counter.first,
        },
        daemon_stopped_early=watch.stopped_early,
        seconds=round(time.monotonic() - began, 1),
    )


def _child(audio_seconds: float, cache: Path) -> dict[str, Any]:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return run_soak(audio_seconds, cache)


def run_in_child(audio_seconds: float, cache: Path) -> dict[str, Any]:
    """:func:`run_soak` in a fresh process (so its RSS is the daemon's)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        result: dict[str, Any] = pool.submit(_child, audio_seconds, cache).result()
    return result


def main(audio_seconds: float, out: Path) -> int:
    """Run the soak, write ``out``/soak.json and soak.md, print the summary; 1 if it failed."""
    print(
        f"soak: {audio_seconds / 60:g} min of paced speech into the daemon "
        "(daemon -> broker -> hub -> konak-home -> daemon) ...",
        flush=True,
    )
    report = run_in_child(audio_seconds, out / ".cache")
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = render_markdown(report)
    (out / "soak.md").write_text(markdown)
    print(markdown)
    print(f"wrote {out / 'soak.json'} and {out / 'soak.md'}")
    if report["failures"]:
        print("soak FAILED: " + "; ".join(report["failures"]))
        return 1
    print("soak passed")
    return 0

"""The daemon's footprint: idle listening cost next to a bare wake word loop, and a cold
start of a real ``konak daemon run`` process to ``READY=1``."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Final

import numpy as np

from konak.bench.rig import PacedMic, RecordingSink, daemon_raw, daemon_settings, models_dir
from konak.bench.turns import TurnBenchError, rss_mb
from konak.daemon.audio import RATE_HZ, Samples
from konak.devtools.mosquitto import Mosquitto

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS: Final = 120.0
STOP_TIMEOUT_SECONDS: Final = 30.0


def non_speech(seconds: float) -> Samples:
    """Quiet room noise: low-level Gaussian noise with a slow hum."""
    n = round(seconds * RATE_HZ)
    rng = np.random.default_rng(7)
    hum = 200 * np.sin(2 * np.pi * 50 * np.arange(n) / RATE_HZ)
    noise: Samples = np.clip(rng.normal(0, 150, n) + hum, -32768, 32767).astype(np.int16)
    return noise


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(mic: PacedMic, seconds: float) -> dict[str, float]:
    """CPU (% of one core) and RSS while ``mic`` plays ``seconds`` of non-speech audio."""
    mic.feed(non_speech(seconds))
    if not mic.started.wait(READY_TIMEOUT_SECONDS):
        raise TurnBenchError("the audio loop never started")
    cpu0, wall0 = _cpu_seconds(), time.monotonic()
    threading.Event().wait(seconds)  # the measurement window itself
    cpu, wall = _cpu_seconds() - cpu0, time.monotonic() - wall0
    return {"cpu_percent_of_one_core": round(100 * cpu / wall, 1), "rss_mb": rss_mb()}


def idle_daemon(seconds: float) -> dict[str, float]:
    """The whole daemon (with its hub link to a real broker) listening to non-speech."""
    from konak.daemon.engines import load_engines
    from konak.daemon.service import Daemon

    with tempfile.TemporaryDirectory(prefix="konak-bench-idle-") as tmp, Mosquitto() as broker:
        hub = {
            "host": broker.host,
            "port": broker.port,
            "username": broker.admin.username,
            "password": broker.admin.password,
        }
        settings = daemon_settings(Path(tmp), models_dir(), hub)
        mic = PacedMic()
        daemon = Daemon(settings, load_engines(settings), mic, RecordingSink())
        thread = threading.Thread(target=daemon.run, name="bench-daemon", daemon=True)
        thread.start()
        try:
            figures = _measure(mic, seconds)
        finally:
            daemon.stop()
            thread.join(timeout=STOP_TIMEOUT_SECONDS)
        if thread.is_alive():
            raise TurnBenchError("the daemon did not stop")
        return figures


def bare_wake_loop(seconds: float) -> dict[str, float]:
    """Only openWakeWord (the same engine class) on the same audio, paced the same way."""
    from konak.daemon.engines import model_path
    from konak.daemon.wake import EMBEDDING_MODEL, MELSPEC_MODEL, OpenWakeWord

    models = models_dir()
    engine = OpenWakeWord(
        model_path(models, MELSPEC_MODEL, "wake"),
        model_path(models, EMBEDDING_MODEL, "wake"),
        {"hey_jarvis": model_path(models, "oww-hey-jarvis", "wake")},
    )
    mic = PacedMic()

    def loop() -> None:
        for chunk in mic.chunks():
            engine.process(chunk.samples)

    thread = threading.Thread(target=loop, name="bench-wake-loop", daemon=True)
    thread.start()
    try:
        return _measure(mic, seconds)
    finally:
        mic.close()
        thread.join(timeout=STOP_TIMEOUT_SECONDS)


def idle_cost(seconds: float) -> dict[str, Any]:
    """Both idle measurements, each in a fresh process, and the daemon's overhead ratio."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        daemon = pool.submit(idle_daemon, seconds).result()
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        bare = pool.submit(bare_wake_loop, seconds).result()
    ratio = daemon["cpu_percent_of_one_core"] / max(bare["cpu_percent_of_one_core"], 0.1)
    return {
        "audio_seconds": seconds,
        "daemon": daemon,
        "bare_wake_loop": bare,
        "cpu_ratio_daemon_to_bare": round(ratio, 2),
    }


def _toml(raw: dict[str, Any]) -> str:
    lines = []
    for name, table in raw.items():
        lines.append(f"[{name}]")
        for key, value in table.items():
            if isinstance(value, dict):
                inline = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
                lines.append(f"{key} = {{{inline}}}")
            else:
                lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def cold_start() -> dict[str, Any]:
    """``konak daemon run`` from exec to ``READY=1`` on a socket we bind; its RSS then."""
    with (
        tempfile.TemporaryDirectory(prefix="konak-bench-cold-") as tmp,
        Mosquitto() as broker,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify,
    ):
        work = Path(tmp)
        hub = {
            "host": broker.host,
            "port": broker.port,
            "username": broker.admin.username,
            "password": broker.admin.password,
        }
        config = work / "daemon.toml"
        config.write_text(_toml(daemon_raw(work, models_dir(), hub)))
        config.chmod(0o600)
        notify.bind(str(work / "notify"))
        notify.settimeout(READY_TIMEOUT_SECONDS)
        env = {**os.environ, "NOTIFY_SOCKET": str(work / "notify")}
        started = time.perf_counter()
        with (work / "daemon.err").open("wb") as stderr:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
                [sys.executable, "-m", "konak.cli", "daemon", "run", "--config", str(config)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            ready = _wait_ready(notify, proc)
            seconds = time.perf_counter() - started
            rss = _rss_of(proc.pid)
            proc.send_signal(signal.SIGTERM)
            status = proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if not ready:
            tail = (work / "daemon.err").read_text(errors="replace")[-500:]
            raise TurnBenchError(f"the daemon never sent READY=1: {tail}")
        return {"start_to_ready_seconds": round(seconds, 2), "rss_at_ready_mb": rss,
                "exit_status": status}  # fmt: skip


def _wait_ready(notify: socket.socket, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            message = notify.recv(4096).decode(errors="replace")
        except TimeoutError:
            return False
        if "READY=1" in message.splitlines():
            return True
    return False


def _rss_of(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0

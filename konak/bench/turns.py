"""Turn latency and daemon footprint: spoken commands, paced in real time, through the real
daemon -> real broker -> real hub process with konak-home -> daemon -> speaker.

Runs in a child process of its own (:func:`run_in_child`) so that its RSS is the daemon's
(plus the small harness), not the benchmark's.
"""

from __future__ import annotations

import logging
import multiprocessing
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Final

import numpy as np
import paho.mqtt.client as mqtt

from konak.bench.rig import (
    DEVICE,
    LIGHTS,
    TENANT,
    PacedMic,
    RecordingSink,
    Utterance,
    broker_link,
    daemon_settings,
    models_dir,
    turn_utterances,
)
from konak.bench.stats import percentiles_ms
from konak.daemon.audio import RATE_HZ
from konak.daemon.events import EventLog
from konak.devtools.localhub import READY_TIMEOUT_SECONDS, local_hub
from konak.devtools.mosquitto import Mosquitto
from konak.devtools.probe import MqttProbe, ProbeError
from konak.errors import KonakError
from konak.protocol import Intent, Kind, Reply, decode_as, subscription

logger = logging.getLogger(__name__)

LEAD_SECONDS: Final = 0.5
TAIL_SECONDS: Final = 1.5
TURN_TIMEOUT_SECONDS: Final = 60.0
LATENCIES: Final = (
    "speech_end_found_to_ack_earcon",
    "speech_end_found_to_transcript",
    "speech_end_found_to_intent_at_hub",
    "speech_end_found_to_first_reply_audio",
    "true_speech_end_to_first_reply_audio",
)


class TurnBenchError(KonakError):
    """The turn benchmark could not run."""

    code = "bench_turns"


def rss_mb() -> float:
    """This process's resident set size in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class HubWatch(MqttProbe):
    """Sees every intent the device publishes (as the hub does) and when it arrived."""

    def __init__(self, broker: Mosquitto) -> None:
        super().__init__(broker.host, broker.port, broker.admin, f"bench-watch-{uuid.uuid4().hex}")
        self.intent_at: dict[str, float] = {}
        self._arrived = threading.Condition()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        if msg.topic.endswith("/" + Kind.INTENT.value):
            try:
                intent = decode_as(Intent, bytes(msg.payload), topic=msg.topic)
            except KonakError:
                logger.warning("unreadable intent on %s", msg.topic)
                return
            with self._arrived:
                self.intent_at.setdefault(intent.turn_id, now)
                self._arrived.notify_all()
            return
        super()._on_message(client, userdata, msg)

    def warm_up(self) -> None:
        """Until konak-home's MCP session is up the hub has no route: ask until it answers."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            intent = Intent(
                tenant=TENANT,
                device=DEVICE,
                turn_id=f"warm-{uuid.uuid4().hex}",
                text="turn on the kitchen light",
                intent="HassTurnOn",
                slots={"name": LIGHTS[0][0]},
            )
            self.publish(intent.topic, intent.to_payload())
            try:
                got = self.next(timeout=10)
            except ProbeError:
                continue
            if decode_as(Reply, got.payload, topic=got.topic).outcome == "ok":
                return
            time.sleep(0.5)  # konak-home is still connecting; ask again
        raise TurnBenchError("the hub never answered a warm-up intent")


def _one_turn(
    mic: PacedMic, log: EventLog, sink: RecordingSink, watch: HubWatch, utterance: Utterance
) -> dict[str, Any]:
    lead = np.zeros(round(LEAD_SECONDS * RATE_HZ), np.int16)
    tail = np.zeros(round(TAIL_SECONDS * RATE_HZ), np.int16)
    seen = len(log.events)
    audio_at = mic.feed(np.concatenate([lead, utterance.samples, tail]))
    true_end = audio_at + (lead.size + utterance.speech_end_sample) / RATE_HZ
    start = log.wait_for(
        lambda e: e.type == "run-start" and log.events.index(e) >= seen, TURN_TIMEOUT_SECONDS
    )
    if start is None:
        return {"text": utterance.text, "voice": utterance.voice, "error": "no_wake"}
    turn_id = start.turn_id
    end = log.wait_for(lambda e: e.type == "run-end" and e.turn_id == turn_id, TURN_TIMEOUT_SECONDS)
    events = log.of(turn_id)
    result: dict[str, Any] = {
        "text": utterance.text,
        "voice": utterance.voice,
        "expected": utterance.intent,
        "turn_id": turn_id,
        "heard": events["stt-end"].data.get("text") if "stt-end" in events else None,
        "intent": events["intent-end"].data.get("intent") if "intent-end" in events else None,
        "outcome": events["hub-end"].data.get("outcome") if "hub-end" in events else None,
    }
    needed = ("vad-end", "stt-end", "tts-start")
    if end is None or "error" in events or any(t not in events for t in needed):
        result["error"] = events["error"].data["code"] if "error" in events else "incomplete"
        return result
    found = events["vad-end"].at
    ack = sink.first_after(found)
    reply_audio = sink.first_after(events["tts-start"].at)
    intent_at = watch.intent_at.get(turn_id)
    if ack is None or reply_audio is None or intent_at is None:
        result["error"] = "not_observed"
        return result
    result.update(
        {
            LATENCIES[0]: ack - found,
            LATENCIES[1]: events["stt-end"].at - found,
            LATENCIES[2]: intent_at - found,
            LATENCIES[3]: reply_audio - found,
            LATENCIES[4]: reply_audio - true_end,
        }
    )
    return result


def run_turns(turns: int, cache: Path) -> dict[str, Any]:
    """Run ``turns`` spoken turns end to end; latencies, failures and RSS."""
    from konak.daemon.engines import load_engines
    from konak.daemon.service import Daemon

    if turns < 1:
        raise TurnBenchError("turns must be at least 1")
    models = models_dir()
    utterances = turn_utterances(cache, models)
    with (
        tempfile.TemporaryDirectory(prefix="konak-bench-turns-") as tmp,
        Mosquitto() as broker,
        local_hub(Path(tmp), broker, TENANT, LIGHTS),
        HubWatch(broker) as watch,
    ):
        watch.subscribe(subscription(Kind.INTENT, tenant=TENANT, device=DEVICE))
        watch.subscribe(subscription(Kind.REPLY, tenant=TENANT, device=DEVICE))
        watch.warm_up()
        settings = daemon_settings(
            Path(tmp),
            models,
            broker_link(broker, reply_timeout_seconds=30.0),
        )
        engines = load_engines(settings)
        mic, sink, log = PacedMic(), RecordingSink(), EventLog()
        daemon = Daemon(settings, engines, mic, sink)
        daemon.bus.subscribe(log)
        thread = threading.Thread(target=daemon.run, name="bench-daemon", daemon=True)
        thread.start()
        try:
            if not mic.started.wait(TURN_TIMEOUT_SECONDS):
                raise TurnBenchError("the daemon never started listening")
            rss_start = rss_mb()
            started = time.perf_counter()
            results = [
                _one_turn(mic, log, sink, watch, utterances[i % len(utterances)])
                for i in range(turns)
            ]
            seconds = time.perf_counter() - started
            rss_end = rss_mb()
        finally:
            daemon.stop()
            thread.join(timeout=30)
    return summarize(results, rss_start, rss_end, seconds)


def summarize(
    results: list[dict[str, Any]], rss_start: float, rss_end: float, seconds: float
) -> dict[str, Any]:
    """Percentiles of each latency over the completed turns, and what failed."""
    done = [r for r in results if "error" not in r]
    failed = [r for r in results if "error" in r]
    voices: dict[str, dict[str, int]] = {}
    for r in results:
        tally = voices.setdefault(r.get("voice", "piper"), {"turns": 0, "right_intent": 0})
        tally["turns"] += 1
        if r.get("intent") is not None and r.get("intent") == r.get("expected"):
            tally["right_intent"] += 1
    return {
        "accuracy_by_voice": voices,
        "turns": len(results),
        "completed": len(done),
        "failed": [
            {"text": r["text"], "voice": r.get("voice", "piper"), "error": r["error"]}
            for r in failed
        ],
        "misheard": sum(1 for r in done if r["intent"] is None),
        "latency": {name: percentiles_ms([r[name] for r in done]) for name in LATENCIES},
        "rss_after_start_mb": rss_start,
        "rss_after_turns_mb": rss_end,
        "seconds": round(seconds, 1),
    }


def run_in_child(turns: int, cache: Path) -> dict[str, Any]:
    """:func:`run_turns` in a fresh process (so its RSS is the daemon's)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        result: dict[str, Any] = pool.submit(run_turns, turns, cache).result()
    return result

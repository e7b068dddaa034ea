"""Hypothesis strategies for valid wire messages."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from konak.protocol import (
    Cmd,
    Config,
    Intent,
    Message,
    Reply,
    Status,
    Telemetry,
    Wake,
    WakeWordSetting,
)

identifiers = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True)
turn_ids = st.from_regex(r"[A-Za-z0-9_-]{8,64}", fullmatch=True)
names = st.text(min_size=1, max_size=40)
short = st.text(max_size=40)
texts = st.text(max_size=300)
fractions = st.floats(min_value=0, max_value=1)
non_negative = st.floats(min_value=0, max_value=1e12)
timestamps = st.floats(min_value=0, max_value=4e9)
slot_values = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)


def _common() -> dict[str, Any]:
    return {"tenant": identifiers, "device": identifiers, "ts": timestamps}


statuses = st.builds(
    Status,
    **_common(),
    state=st.sampled_from(["online", "offline", "error"]),
    name=st.none() | names,
    area=st.none() | names,
    versions=st.dictionaries(short, short, max_size=4),
    models=st.lists(short, max_size=5),
    capabilities=st.lists(short, max_size=5),
    error=st.none() | short,
)
telemetries = st.builds(
    Telemetry,
    **_common(),
    uptime_seconds=non_negative,
    cpu_percent=non_negative,
    rss_bytes=st.integers(min_value=0, max_value=2**40),
    temperature_celsius=st.none() | st.floats(-40, 120),
    queue_depth=st.integers(0, 10_000),
    dead_letters=st.integers(0, 10_000),
    expired_intents=st.integers(0, 10_000),
    dropped_audio_chunks=st.integers(0, 10**9),
    stage_latency_ms=st.dictionaries(short, non_negative, max_size=5),
    model_load_seconds=st.dictionaries(short, non_negative, max_size=5),
)
wakes = st.builds(
    Wake, **_common(), turn_id=turn_ids, wake_word=names, score=fractions, area=st.none() | names
)
intents = st.builds(
    Intent,
    **_common(),
    turn_id=turn_ids,
    text=texts,
    intent=st.none() | names,
    slots=st.dictionaries(names, slot_values, max_size=4),
    area=st.none() | names,
    wake_word=st.none() | names,
    wake_score=st.none() | fractions,
    speech_ended_at=st.none() | timestamps,
    continued=st.booleans(),
    expires_at=st.none() | timestamps,
)
replies = st.builds(
    Reply,
    **_common(),
    turn_id=turn_ids,
    text=texts,
    outcome=st.sampled_from(
        ["ok", "no_route", "stand_down", "error", "limit", "duplicate", "expired"]
    ),
    continue_conversation=st.booleans(),
)
configs = st.builds(
    Config,
    **_common(),
    revision=st.integers(0, 10**6),
    name=st.none() | names,
    area=st.none() | names,
    wake_words=st.lists(st.builds(WakeWordSetting, model=names, threshold=fractions), max_size=4),
    sentences=st.dictionaries(names, st.lists(texts, max_size=3), max_size=3),
    slot_lists=st.dictionaries(names, st.lists(names, max_size=4), max_size=3),
    volume=fractions,
    model_set=st.none() | names,
)
cmds = st.one_of(
    st.builds(
        Cmd,
        **_common(),
        command_id=turn_ids,
        action=st.just("announce"),
        text=st.text(min_size=1, max_size=200),
    ),
    st.builds(Cmd, **_common(), command_id=turn_ids, action=st.just("stop")),
    st.builds(
        Cmd,
        **_common(),
        command_id=turn_ids,
        action=st.just("update_models"),
        model_set=st.none() | names,
    ),
)

messages: st.SearchStrategy[Message] = st.one_of(
    statuses, telemetries, wakes, intents, replies, configs, cmds
)

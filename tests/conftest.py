"""Fixtures shared by the whole suite: a real Mosquitto broker and MQTT probes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from konak.devtools.mosquitto import Credentials, Mosquitto
from konak.devtools.probe import MqttProbe

# The models `make setup` fetched into the work tree (the Makefile exports the same path).
os.environ.setdefault("KONAK_MODELS_DIR", str(Path(__file__).resolve().parents[1] / ".models"))

# Shared, noisy machines: no per-example deadline; timing belongs in `make bench`.
settings.register_profile(
    "konak", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=200
)
settings.load_profile("konak")


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    """A real Mosquitto 2 on a free loopback port with authentication on."""
    with Mosquitto() as running:
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

"""The monitoring one deploys (issue 16): Prometheus alert rules checked and unit-tested by
Debian's promtool, the example Prometheus config valid, and every metric the rules and the
Grafana dashboard ask for one the hub really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from konak.hub.device_metrics import DeviceCollector
from konak.hub.metrics import HubMetrics
from konak.hub.store import Store
from konak.protocol import Status, Telemetry

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
RULES = MONITORING / "prometheus" / "konak-rules.yml"
DASHBOARD = MONITORING / "grafana" / "konak-fleet.json"
PROMTOOL = shutil.which("promtool")
# Names PromQL may use beside the hub's: Prometheus's own series and functions.
NOT_OURS = {"up"}

pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus)")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_rules_are_valid_and_their_unit_tests_pass() -> None:
    checked = promtool("check", "rules", RULES.name, cwd=RULES.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout
    tested = promtool("test", "rules", "konak-rules.test.yml", cwd=RULES.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_rule_test_that_expects_the_wrong_thing_fails(tmp_path: Path) -> None:
    # The unit tests can fail: the same file, expecting no offline alert at all.
    shutil.copy(RULES, tmp_path / RULES.name)
    text = (RULES.parent / "konak-rules.test.yml").read_text()
    (tmp_path / "wrong.test.yml").write_text(
        text.replace("kitchen-pi (acme) is offline", "kitchen-pi (acme) is fine")
    )
    assert promtool("test", "rules", "wrong.test.yml", cwd=tmp_path).returncode != 0


def test_the_example_prometheus_config_is_valid(tmp_path: Path) -> None:
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.example.yml").read_text())
    token = tmp_path / "konak_metrics_token"
    token.write_text("x" * 40)
    config["scrape_configs"][0]["authorization"]["credentials_file"] = str(token)
    shutil.copy(RULES, tmp_path / RULES.name)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def exported_names(tmp_path: Path) -> set[str]:
    """Every sample name a hub's /metrics can carry (histogram and counter suffixes too)."""
    metrics = HubMetrics()
    store = Store(tmp_path / "hub.sqlite3")
    now = time.time()
    store.upsert_status(Status(tenant="acme", device="pi", state="error", error="x"), now)
    store.add_telemetry(
        Telemetry(
            tenant="acme",
            device="pi",
            uptime_seconds=1,
            cpu_percent=1,
            rss_bytes=1,
            temperature_celsius=40,
            stage_latency_ms={"stt": 10},
        ),
        now,
        retention_seconds=3600,
        max_rows=10,
    )
    metrics.registry.register(DeviceCollector(store))
    names = set()
    for family in metrics.registry.collect():
        names |= {sample.name for sample in family.samples}
        if family.type == "histogram":  # exported once a label set is observed
            names |= {f"{family.name}{s}" for s in ("_bucket", "_sum", "_count")}
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "gauge":  # a labelled gauge is exported once a label set is set
            names.add(family.name)
    store.close()
    return names


def used_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (identifiers not followed by '(' nor in {...}
    label matchers, by / on / without lists)."""
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|on|without|ignoring)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    names = set(re.findall(r"\b([a-z_][a-z0-9_]*)\b(?!\s*\()", expr))
    keywords = {"and", "or", "unless", "by", "on", "le", "bool", "offset", "without"}
    return {n for n in names if n.startswith("konak_") or n in NOT_OURS} - keywords


def test_every_metric_the_rules_and_the_dashboard_use_is_exported(tmp_path: Path) -> None:
    exported = exported_names(tmp_path) | NOT_OURS
    rules = yaml.safe_load(RULES.read_text())
    rule_exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    panel_exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]

    used = {name for expr in rule_exprs + panel_exprs for name in used_names(expr)}

    assert used - exported == set()
    # And the check sees the names (a regex that found nothing would pass vacuously).
    assert {"konak_device_up", "konak_hub_intent_seconds_bucket"} <= used
    assert "konak_device_cpu_percent" in used
    assert len(dashboard["panels"]) >= 10
    assert {p["id"] for p in dashboard["panels"]} == set(range(1, len(dashboard["panels"]) + 1))


@pytest.mark.skipif(shutil.which("amtool") is None, reason="Debian's prometheus-alertmanager")
def test_the_example_alertmanager_route_is_valid(tmp_path: Path) -> None:
    example = MONITORING / "alertmanager" / "alertmanager.example.yml"
    config = yaml.safe_load(example.read_text())
    checked = subprocess.run(
        ["amtool", "check-config", str(example)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Mail for everything, mail and the webhook for what is critical.
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers[config["route"]["receiver"]]["email_configs"]
    (critical,) = config["route"]["routes"]
    assert critical["matchers"] == ['severity="critical"']
    assert set(receivers[critical["receiver"]]) >= {"email_configs", "webhook_configs"}

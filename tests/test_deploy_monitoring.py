"""The Prometheus and Grafana files of deploy/: promtool accepts the rules and the configuration, the
alert unit tests pass, and every metric the dashboard and the alerts query is one the server exports
(so that a renamed metric breaks this test, not a dashboard nobody looks at until an incident)."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import prometheus_client
import pytest
import yaml

import sentinel
from sentinel.server.worker_restarts import WORKER_RESTARTS

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "sentinelstream.json"
METRIC_NAME = re.compile(r"\bsentinel_[a-z0-9_]+")
# The sample names of each kind of metric family (prometheus_client's exposition, without _created).
SAMPLE_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}

promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    promtool is None, reason="promtool is missing (Debian package prometheus: ensure-system-packages --tests)"
)


def run_promtool(*arguments: str) -> str:
    """promtool's output; the test fails with it when promtool exits non-zero."""
    assert promtool is not None
    result = subprocess.run(
        [promtool, *arguments], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@needs_promtool
def test_promtool_accepts_the_alert_rules_and_the_configuration() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"][0]["rules"]
    assert f"SUCCESS: {len(rules)} rules found" in run_promtool("check", "rules", "alerts.yml")
    assert "is valid prometheus config file syntax" in run_promtool("check", "config", "prometheus.yml")


@needs_promtool
def test_the_alert_unit_tests_pass() -> None:
    assert "SUCCESS" in run_promtool("test", "rules", "alerts_test.yml")


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    tested = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")  # a test that only expects silence proves nothing about firing
    }
    assert alerts == tested


def exported_metric_names() -> set[str]:
    """Every family and sample name the server exports: the metrics of each sentinel module defining
    some with prometheus_client (found by reading the installed package), and the supervisor's own."""
    root = Path(sentinel.__file__).parent
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(errors="replace")
        if "prometheus_client" in text and re.search(r"\b(Counter|Gauge|Histogram)\(\s*\"sentinel_", text):
            importlib.import_module(".".join(("sentinel", *path.relative_to(root).with_suffix("").parts)))
    families = [*prometheus_client.REGISTRY.collect(), *WORKER_RESTARTS.collect()]
    return {
        name
        for family in families
        if family.name.startswith("sentinel_")
        for name in (family.name, *(family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type]))
    }


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return queries + [variable["definition"] for variable in dashboard["templating"]["list"]]


def alert_queries() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_the_dashboard_and_the_alerts_query_only_exported_metrics() -> None:
    exported = exported_metric_names()
    assert "sentinel_calls_total" in exported and "sentinel_stage_seconds_bucket" in exported  # found at all
    for source, queries in (("dashboard", dashboard_queries()), ("alerts", alert_queries())):
        used = {name for query in queries for name in METRIC_NAME.findall(query)}
        assert used - exported == set(), f"{source} queries metrics the server does not export"


def test_the_dashboard_covers_the_pipeline() -> None:
    used = {name for query in dashboard_queries() for name in METRIC_NAME.findall(query)}
    for name in (
        "sentinel_calls_total",  # rates by method and status code
        "sentinel_decisions_total",  # by outcome
        "sentinel_stage_seconds_bucket",  # p50/p99 per stage, the ledger commit wait
        "sentinel_degraded_decisions_total",
        "sentinel_ledger_spool_bytes",
        "sentinel_ledger_spooling",
        "sentinel_rule_hits_total",
        "sentinel_model_scores_total",
    ):
        assert name in used, name


def test_grafana_provisioning_points_at_the_dashboard_and_its_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uids = {source["uid"] for source in datasource["datasources"]}
    used = {panel["datasource"]["uid"] for panel in dashboard["panels"] if "datasource" in panel}
    assert used == uids
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "sentinelstream.yml").read_text())
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in mounts
    panel_ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(panel_ids) == len(set(panel_ids))

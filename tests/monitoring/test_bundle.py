"""The monitoring bundle checked offline: promtool on the Prometheus config, the alert rules and
their unit tests; the dashboards as JSON whose every expression parses; the KEDA example."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring.conftest import BUNDLE, DASHBOARDS, dashboard_panels, panel_expressions


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=BUNDLE)


@pytest.mark.parametrize(
    "command",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts.test.yml"),
    ],
    ids=" ".join,
)
def test_promtool_accepts_the_bundle(command: tuple[str, ...]) -> None:
    done = promtool(*command)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((BUNDLE / "alerts.yml").read_text())["groups"]
    alerts = {rule["alert"] for group in rules for rule in group["rules"]}
    tests = yaml.safe_load((BUNDLE / "alerts.test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert alerts == tested


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_round_trip_as_json(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert json.loads(json.dumps(dashboard)) == dashboard
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_panel_expression_parses(tmp_path: Path) -> None:
    """promtool parses each expression as a recording rule's."""
    rules = [
        {"record": f"panel:{index}", "expr": expr}
        for index, (_, expr) in enumerate(panel_expressions())
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_seeds_panels_are_there_as_written() -> None:
    panels = {panel["title"]: panel for panel in dashboard_panels()}
    assert panels["Request Rate"]["targets"][0]["expr"] == "rate(http_requests_total[5m])"
    assert (
        panels["Response Time"]["targets"][0]["expr"]
        == "histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m]))"
    )
    provisioned = yaml.safe_load(
        (BUNDLE / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    assert all(panel["datasource"]["uid"] == uid for panel in dashboard_panels())


def test_the_keda_example_scales_on_the_queue_with_a_nonzero_target() -> None:
    scaled = yaml.safe_load((BUNDLE / "keda" / "scaledobject.yaml").read_text())
    triggers = {trigger["type"]: trigger["metadata"] for trigger in scaled["spec"]["triggers"]}
    assert triggers["prometheus"]["query"] == "max(lg_api_num_pending_runs)"
    assert float(triggers["prometheus"]["threshold"]) >= 1
    assert "status = 'pending'" in triggers["postgresql"]["query"]
    assert float(triggers["postgresql"]["targetQueryValue"]) >= 1

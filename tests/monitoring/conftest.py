"""The monitoring bundle (deploy/monitoring) and a real Prometheus for it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import HOST, REPO_ROOT, free_port

BUNDLE = REPO_ROOT / "deploy" / "monitoring"
DASHBOARDS = sorted((BUNDLE / "grafana" / "dashboards").glob("*.json"))


def dashboard_panels() -> list[dict[str, Any]]:
    return [
        panel
        for path in DASHBOARDS
        for panel in json.loads(path.read_text())["panels"]
        if panel["type"] != "row"
    ]


def panel_expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every dashboard panel."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard_panels()
        for target in panel["targets"]
    ]


def alert_rules() -> list[dict[str, Any]]:
    import yaml

    groups = yaml.safe_load((BUNDLE / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@dataclass
class Prometheus:
    url: str

    def query(self, expr: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body: dict[str, Any] = response.json()
        return body

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = httpx.get(f"{self.url}/api/v1/alerts").json()["data"][
            "alerts"
        ]
        return alerts


@contextmanager
def prometheus(target: str, *, rules_without_delay: bool = True) -> Iterator[Prometheus]:
    """A Prometheus on 127.0.0.1 scraping `target` every second, with the bundle's alert rules;
    their `for:` set to 0s (the expressions untouched) so an alert fires within seconds."""
    with tempfile.TemporaryDirectory(prefix="stead-prometheus-") as work:
        root = Path(work)
        rules = (BUNDLE / "alerts.yml").read_text()
        if rules_without_delay:
            rules = re.sub(r"\bfor: \d+[smh]", "for: 0s", rules)
        (root / "alerts.yml").write_text(rules)
        (root / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "rule_files: [alerts.yml]\n"
            "scrape_configs:\n"
            f"  - job_name: stead\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        port = free_port()
        process = subprocess.Popen(
            [
                shutil.which("prometheus") or "prometheus",
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address={HOST}:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(root / "prometheus.log").open("wb"),
        )
        url = f"http://{HOST}:{port}"
        try:
            _wait_until_ready(url, process, root)
            yield Prometheus(url)
        finally:
            process.terminate()
            process.wait(timeout=20)


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], root: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, (root / "prometheus.log").read_text()[-2000:]
        try:
            if httpx.get(f"{url}/-/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("Prometheus did not become ready")

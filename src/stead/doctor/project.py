"""The project: langgraph.json parses and every graph imports."""

from __future__ import annotations

from stead.config import ConfigError, Settings, load_settings
from stead.doctor.findings import Finding, failed, ok
from stead.graphs import GraphLoadError, load_graph_specs


def check_project(config: str, data_dir: str | None) -> tuple[list[Finding], Settings | None]:
    try:
        settings = load_settings(config, data_dir=data_dir)
    except ConfigError as exc:
        return [failed("config", str(exc), f"correct {config}")], None
    try:
        specs = load_graph_specs(settings)
    except GraphLoadError as exc:
        found = failed("graphs", str(exc), "fix the graph's module or its path in langgraph.json")
        return [ok("config", f"{config} parses"), found], settings
    graphs = f"{len(specs)} graph(s) import: {', '.join(specs)}"
    return [ok("config", f"{config} parses"), ok("graphs", graphs)], settings

"""Helpers for the monitoring tests: the package's alert rules and dashboard, the metric names
a PromQL expression selects, and the series names a /metrics text declares.

Importable from any test because the root conftest puts `tests/` on sys.path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from prometheus_client.parser import text_string_to_metric_families

MONITORING = Path(__file__).resolve().parents[2] / "app" / "acoustid_stack" / "monitoring"
#: Grafana's range variable, as Grafana substitutes it before the query reaches Prometheus
RATE_INTERVAL = re.compile(r"\$__rate_interval")

#: series names each exposition type produces for a family
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}


def load_rules() -> list[dict[str, Any]]:
    rules_file = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule for group in rules_file["groups"] for rule in group["rules"]]


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads((MONITORING / "dashboard.json").read_text()))


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    return [
        RATE_INTERVAL.sub("5m", target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def metric_names(expr: str) -> set[str]:
    """Names of every series selector in a PromQL expression (parsed, not pattern-matched)."""
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def series_names(exposition: str) -> set[str]:
    """Every series name a /metrics text declares, with or without samples yet."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + s for s in _SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names

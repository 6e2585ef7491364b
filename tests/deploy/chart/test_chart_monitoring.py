"""The chart's PrometheusRule, PodMonitors and dashboard ConfigMap: rendered from the package's
own files, valid against the prometheus-operator CRDs as the API server prunes, off by default."""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitoring_support import MONITORING, load_rules

from .conftest import CHART_DIR, Rendered, deep_merge, helm_python, load_values
from .test_chart_crds import CRD_DIR, crd_schema, jsonschema, unknown_fields

pytestmark = [
    pytest.mark.deploy,
    pytest.mark.skipif(
        not CRD_DIR.is_dir(),
        reason=f"CRD schemas not found at {CRD_DIR} (only CI checkouts have ../shared/crds)",
    ),
]


MONITORING_ON = {
    "serviceMonitor": {"enabled": True},
    "monitoring": {"prometheusRule": {"enabled": True}, "dashboards": {"enabled": True}},
}


@pytest.mark.parametrize("profile", ["minimum", "production"])
def test_each_profile_with_monitoring_on_renders_objects_that_match_the_crds(
    profile: str, render: Callable[[dict[str, Any]], Rendered]
) -> None:
    values = load_values(f"values-{profile}.yaml", "ci/existing-secrets-values.yaml")
    rendered = render(deep_merge(values, MONITORING_ON))
    (rule,) = rendered.of_kind("PrometheusRule")
    validate(rule, "monitoring.coreos.com_prometheusrules.yaml")
    monitors = rendered.of_kind("PodMonitor")
    assert len(monitors) == 2
    for monitor in monitors:
        validate(monitor, "monitoring.coreos.com_podmonitors.yaml")
    assert len(rendered.of_kind("ServiceMonitor")) == 2


def validate(obj: dict[str, object], crd_file: str) -> None:
    schema = crd_schema(crd_file, "v1")
    jsonschema.Draft7Validator(schema).validate(obj)
    assert unknown_fields(obj["spec"], schema["properties"]["spec"], "spec") == []


def test_the_prometheus_rule_holds_the_package_rules_and_matches_the_crd(
    rendered_sets: dict[str, Rendered],
) -> None:
    (rule,) = rendered_sets["production-everything-on"].of_kind("PrometheusRule")
    validate(rule, "monitoring.coreos.com_prometheusrules.yaml")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    package = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    assert rule["spec"] == package  # one source: the rules' own {{ $labels }} untouched
    assert "{{ $labels.job }}" in json.dumps(rule["spec"])


def test_the_crd_check_catches_a_misplaced_rule_field() -> None:
    spec = crd_schema("monitoring.coreos.com_prometheusrules.yaml", "v1")["properties"]["spec"]
    bad = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "1", "runbook_url": "x"}]}]}
    assert unknown_fields(bad, spec, "spec") == ["spec.groups[0].rules[0].runbook_url"]


def test_worker_and_cron_are_scraped_by_pod_monitors_on_their_metrics_port(
    rendered_sets: dict[str, Rendered],
) -> None:
    rendered = rendered_sets["production-everything-on"]
    monitors = rendered.of_kind("PodMonitor")
    assert sorted(
        m["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] for m in monitors
    ) == ["cron", "worker"]
    for monitor in monitors:
        validate(monitor, "monitoring.coreos.com_podmonitors.yaml")
        assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    policies = {p["metadata"]["name"]: p for p in rendered.of_kind("NetworkPolicy")}
    for component in ("worker", "cron"):
        ingress = policies[f"acoustid-acoustid-stack-{component}"]["spec"]["ingress"]
        assert ingress[0]["ports"] == [{"port": "metrics", "protocol": "TCP"}]


def test_the_dashboard_config_map_carries_the_sidecar_label_and_the_package_json(
    rendered_sets: dict[str, Rendered],
) -> None:
    (config_map,) = [
        c
        for c in rendered_sets["production-everything-on"].of_kind("ConfigMap")
        if c["metadata"]["name"].endswith("-dashboard")
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = config_map["data"].values()
    assert text == (MONITORING / "dashboard.json").read_text()
    assert json.loads(text)["uid"] == "acoustid-stack"


def test_monitoring_objects_are_off_by_default(rendered_sets: dict[str, Rendered]) -> None:
    for name in ("minimum", "production"):
        rendered = rendered_sets[name]
        assert not rendered.of_kind("PrometheusRule")
        assert not rendered.of_kind("PodMonitor")
        assert not [
            c for c in rendered.of_kind("ConfigMap") if c["metadata"]["name"].endswith("-dashboard")
        ]


def test_the_index_shard_down_alert_selects_the_scrape_jobs_of_every_shard(
    rendered_sets: dict[str, Rendered],
) -> None:
    """A ServiceMonitor's job label is the Service name: the alert's job regex must match it."""
    (rule,) = [r for r in load_rules() if r["alert"] == "AcoustidIndexShardDown"]
    match = re.search(r'job=~"([^"]+)"', rule["expr"])
    assert match is not None
    services = [
        s["metadata"]["name"]
        for s in rendered_sets["production"].of_kind("Service")
        if s["metadata"]["labels"]["app.kubernetes.io/component"] == "index"
    ]
    assert len(services) == 4
    for service in services:
        assert re.fullmatch(match.group(1), service), service


def test_the_packaged_chart_holds_the_files_themselves_not_links(tmp_path: Path) -> None:
    """`helm package` follows files/ links: a user's packaged chart needs no checkout."""
    packaged = Path(helm_python.package(CHART_DIR, destination=tmp_path))
    with tarfile.open(packaged) as archive:
        for name in ("alerts.yml", "dashboard.json"):
            member = archive.getmember(f"acoustid-stack/files/{name}")
            assert member.isfile()
            content = archive.extractfile(member)
            assert content is not None
            assert content.read().decode() == (MONITORING / name).read_text()

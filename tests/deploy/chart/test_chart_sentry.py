"""Sentry on Kubernetes: the DSN only from an existing Secret, mounted as a file in every pod
that reports errors (api, web, worker, cron, index) and named by ACOUSTID_SENTRY_DSN_FILE."""

from __future__ import annotations

import posixpath
from typing import Any

import pytest

from .conftest import Rendered, helm_python

pytestmark = pytest.mark.deploy

REPORTING = {"api", "web", "worker", "cron", "index"}
DSN_FILE = "/etc/acoustid/secrets/sentry-dsn"


def _reporting_pods(rendered: Rendered) -> dict[str, dict[str, Any]]:
    """component -> pod spec, one per component (the first index shard stands for all)."""
    pods: dict[str, dict[str, Any]] = {}
    for obj, spec in rendered.pod_specs():
        component = obj["metadata"]["labels"]["app.kubernetes.io/component"]
        if component in REPORTING and obj["kind"] in {"Deployment", "StatefulSet"}:
            pods.setdefault(component, spec)
    return pods


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def _secret_behind(spec: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, str]:
    """(Secret name, key) of the file `path` as the container sees it."""
    folder, file = posixpath.split(path)
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == folder)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    if "secret" in volume:
        sources = [{"secret": {"name": volume["secret"]["secretName"], **volume["secret"]}}]
    else:
        sources = volume["projected"]["sources"]
    for source in sources:
        for item in source["secret"].get("items", []):
            if item["path"] == file:
                return source["secret"]["name"], item["key"]
    raise AssertionError(f"{path} is not a Secret item of volume {volume['name']}")


def test_every_reporting_pod_reads_the_dsn_from_the_secret_file(
    rendered_sets: dict[str, Rendered],
) -> None:
    rendered = rendered_sets["production-everything-on"]
    pods = _reporting_pods(rendered)
    assert set(pods) == REPORTING
    for component, spec in pods.items():
        container = spec["containers"][0]
        env = _env(container)
        assert env.get("ACOUSTID_SENTRY_DSN_FILE") == DSN_FILE, component
        assert "ACOUSTID_SENTRY_DSN" not in env, component
        assert _secret_behind(spec, container, DSN_FILE) == ("acoustid-sentry", "dsn"), component
    index_env = _env(pods["index"]["containers"][0])
    assert index_env["ACOUSTID_SENTRY_ENVIRONMENT"] == "production"
    assert index_env["ACOUSTID_SENTRY_TRACES_SAMPLE_RATE"] == "0.05"
    conf = rendered.of_kind("ConfigMap")[0]["data"]["acoustid.conf"]
    assert "[sentry]\nenvironment = production\ntraces_sample_rate = 0.05" in conf
    assert "dsn" not in conf
    assert "sentry-dsn: Secret acoustid-sentry, key dsn" in rendered.notes


def test_pods_may_reach_sentry_through_the_network_policies(
    rendered_sets: dict[str, Rendered],
) -> None:
    rendered = rendered_sets["production-everything-on"]
    policy = next(
        obj
        for obj in rendered.of_kind("NetworkPolicy")
        if obj["metadata"]["name"].endswith("-sentry-egress")
    )
    selector = policy["spec"]["podSelector"]["matchExpressions"]
    assert set(next(e["values"] for e in selector if "component" in e["key"])) == REPORTING
    assert policy["spec"]["egress"] == [
        {
            "to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
            "ports": [{"port": 443, "protocol": "TCP"}],
        }
    ]


def test_without_a_secret_nothing_reports_to_sentry(rendered_sets: dict[str, Rendered]) -> None:
    rendered = rendered_sets["minimum"]
    for component, spec in _reporting_pods(rendered).items():
        env = _env(spec["containers"][0])
        assert not [name for name in env if name.startswith("ACOUSTID_SENTRY")], component
    assert "[sentry]" not in rendered.of_kind("ConfigMap")[0]["data"]["acoustid.conf"]
    names = [obj["metadata"]["name"] for obj in rendered.of_kind("NetworkPolicy")]
    assert not [name for name in names if "sentry" in name]


def test_a_dsn_in_the_configmap_is_refused_naming_the_secret_value(chart: Any) -> None:
    values = {
        "database": {"host": "db"},
        "redis": {"host": "redis"},
        "nats": {"servers": ["nats://nats:4222"]},
        "config": {"extra": {"sentry": {"dsn": "https://key@sentry.example/1"}}},
    }
    with pytest.raises(helm_python.HelmRenderError) as error:
        chart.render(values, name="acoustid", namespace="acoustid")
    assert (
        "config.extra.sentry.dsn: secrets must not go into the ConfigMap; put the DSN in a Secret "
        "and set sentry.existingSecret (and sentry.existingSecretKey)"
    ) in str(error.value)

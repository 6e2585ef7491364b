"""values.schema.json, validateValues and `helm lint --strict` refuse bad values clearly."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import CHART_DIR, VALUE_SETS, deep_merge, helm_python, load_values

pytestmark = pytest.mark.deploy


@pytest.fixture(scope="module")
def good_values() -> dict[str, Any]:
    return load_values("values-production.yaml", "ci/existing-secrets-values.yaml")


@pytest.mark.parametrize("file", ["values-minimum.yaml", "values-production.yaml"])
@pytest.mark.parametrize("kube_version", ["v1.31.0", "v1.33.0"])
def test_lint_strict_finds_nothing(file: str, kube_version: str) -> None:
    values = load_values(file, "ci/everything-on-values.yaml")
    report = helm_python.lint(CHART_DIR, values, strict=True, kube_version=kube_version)
    assert report["errors"] == []
    assert report["messages"] == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"api": {"replicas": -1}}, "at '/api/replicas': minimum: got -1, want 0"),
        ({"api": {"replica": 2}}, "at '/api': additional properties 'replica' not allowed"),
        ({"index": {"shards": "four"}}, "at '/index/shards': got string, want integer"),
        ({"worker": {"autoscaling": {"maxReplicas": 0}}}, "at '/worker/autoscaling/maxReplicas'"),
        ({"image": {"tag": "latest"}}, "at '/image/tag'"),
        ({"index": {"persistence": {"size": "1TB"}}}, "at '/index/persistence/size'"),
        ({"index": {"snapshots": {"target": "ftp"}}}, "at '/index/snapshots/target'"),
        ({"unknownTopLevel": True}, "additional properties 'unknownTopLevel' not allowed"),
    ],
)
def test_schema_rejects_bad_values_naming_the_field(
    chart: Any, good_values: dict[str, Any], override: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError) as error:
        chart.validate_schema(chart.merge_values(deep_merge(good_values, override)))
    assert message in str(error.value)


def test_schema_accepts_every_value_set(chart: Any) -> None:
    for files in VALUE_SETS.values():
        chart.validate_schema(chart.merge_values(load_values(*files)))


def test_missing_connection_settings_fail_once_listing_every_fix(chart: Any) -> None:
    values = {"config": {"extra": {"api": {"port": 8000}, "sentry": {"dsn": "x"}}}}
    with pytest.raises(helm_python.HelmRenderError) as error:
        chart.render(values, name="acoustid", namespace="acoustid")
    message = str(error.value)
    for expected in (
        "database.host: required",
        "redis.host: required unless redis.sentinels is set",
        "nats.servers: required",
        "config.extra.api.port: set by the chart",
        "config.extra.sentry.dsn: secrets must not go into the ConfigMap",
    ):
        assert expected in message


def test_inverted_autoscaling_bounds_and_incomplete_s3_are_refused(
    chart: Any, good_values: dict[str, Any]
) -> None:
    values = deep_merge(
        good_values,
        {
            "worker": {"autoscaling": {"minReplicas": 9, "maxReplicas": 3}},
            "index": {"snapshots": {"target": "s3"}},
            "redis": {"auth": {"password": "x"}},
        },
    )
    with pytest.raises(helm_python.HelmRenderError) as error:
        chart.render(values, name="acoustid", namespace="acoustid")
    message = str(error.value)
    assert "worker.autoscaling.minReplicas: 9 is above maxReplicas 3" in message
    assert "index.snapshots.s3.bucket: required" in message
    assert "redis.auth: both password and existingSecret are set" in message


def test_chart_packages(tmp_path: Any) -> None:
    archive = helm_python.package(CHART_DIR, destination=tmp_path)
    assert archive.endswith("acoustid-stack-0.1.0.tgz")

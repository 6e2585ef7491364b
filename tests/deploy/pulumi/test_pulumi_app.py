"""AcoustidApp: our chart's release gets the sizing values and the component connections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pulumi_harness import REPO, Deployment, stack_args

from acoustid_stack.sizing import helm_values, load_sizing
from components.app import IngressArgs
from components.stack import AcoustidStackArgs

pytestmark = pytest.mark.deploy


def app_values(deployment: Deployment) -> dict[str, Any]:
    return deployment.release("acoustid-stack").values


def sized_part(values: dict[str, Any], sized: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``values`` that ``sized`` also has, at every depth."""
    return {
        key: sized_part(values[key], item) if isinstance(item, dict) else values[key]
        for key, item in sized.items()
    }


def test_release_carries_the_sizing_helm_values(deployment: Deployment) -> None:
    profile = load_sizing().profile(deployment.outputs["sizing_profile"])
    sized = helm_values(profile)
    assert sized_part(app_values(deployment), sized) == sized


def test_production_gets_four_index_shards_and_worker_autoscaling_bounds(
    production: Deployment,
) -> None:
    values = app_values(production)
    assert values["index"]["shards"] == 4
    assert values["worker"]["autoscaling"]["minReplicas"] == 8
    assert values["worker"]["autoscaling"]["maxReplicas"] == 16


def test_release_is_our_chart_from_the_repository(production: Deployment) -> None:
    release = production.release("acoustid-stack")
    assert release.inputs["chart"] == str(REPO / "charts" / "acoustid-stack")
    assert release.inputs["namespace"] == "acoustid"


def test_release_points_at_the_component_services_and_secrets(production: Deployment) -> None:
    values = app_values(production)
    outputs = production.outputs
    assert values["database"]["host"] == outputs["database_rw_host"]
    assert values["database"]["readOnlyHost"] == outputs["database_ro_host"]
    assert values["database"]["auth"] == {
        "existingSecret": "acoustid-db-app",
        "existingSecretKey": "password",
    }
    assert values["redis"]["sentinels"] == outputs["redis_sentinels"]
    assert len(values["redis"]["sentinels"]) == 3
    assert values["redis"]["sentinelMaster"] == "acoustid"
    assert values["redis"]["auth"]["existingSecret"] == outputs["redis_credentials_secret"]
    assert values["nats"]["servers"] == ["nats://acoustid-nats.acoustid.svc:4222"]
    assert values["nats"]["user"] == "acoustid"
    assert values["nats"]["auth"] == {
        "existingSecret": outputs["nats_credentials_secret"],
        "existingSecretKey": "password",
    }
    assert values["website"]["auth"]["existingSecret"] == outputs["website_secret"]
    for section in ("database", "redis", "nats", "website"):
        assert "password" not in values[section]["auth"]


def test_ingress_host_becomes_the_api_url_and_the_website_base_url(deploy: Any) -> None:
    ingress = IngressArgs(host="api.acoustid.example", tls_secret="acoustid-tls")
    deployment = deploy(stack_args("production", ingress=ingress, image_tag="1.2.3"))
    values = app_values(deployment)
    assert values["ingress"] == {
        "enabled": True,
        "host": "api.acoustid.example",
        "tlsSecret": "acoustid-tls",
    }
    assert values["config"]["baseUrl"] == "https://api.acoustid.example/"
    assert values["image"]["tag"] == "1.2.3"
    assert deployment.outputs["api_url"] == "https://api.acoustid.example"


def test_release_values_render_with_the_chart(deployment: Deployment) -> None:
    helm_python = pytest.importorskip("helm_python", reason="needs the deploy extra")
    with helm_python.Chart.load(REPO / "charts" / "acoustid-stack") as chart:
        manifests = chart.render(
            app_values(deployment), name="acoustid", namespace="acoustid", is_install=True
        )
    rendered = "\n".join(manifests.values())
    assert "acoustid-db-rw.acoustid.svc" in rendered
    assert "acoustid-redis-announce-0.acoustid.svc:26379" in rendered
    assert "nats://acoustid-nats.acoustid.svc:4222" in rendered


def test_monitoring_turns_on_the_alert_rules_and_dashboards_of_our_chart(
    deploy: Callable[[AcoustidStackArgs], Deployment], deployment: Deployment
) -> None:
    monitored = app_values(deploy(stack_args("minimum", monitoring=True)))
    for values, on in ((app_values(deployment), False), (monitored, True)):
        assert values["serviceMonitor"]["enabled"] is on
        assert values["monitoring"]["prometheusRule"]["enabled"] is on
        assert values["monitoring"]["dashboards"]["enabled"] is on

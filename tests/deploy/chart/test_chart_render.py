"""The chart renders for both sizing profiles and several value sets into valid, sized objects."""

from __future__ import annotations

import json
from typing import Any

import pytest

from acoustid_stack.sizing import load_sizing

from .conftest import RELEASE, Rendered, load_values

pytestmark = pytest.mark.deploy

kubernetes_validate = pytest.importorskip("kubernetes_validate")

KUBERNETES_VERSIONS = ("1.31", "1.32", "1.33")
# Kinds kubernetes-validate has no schema for; test_chart_crds.py and test_chart_monitoring.py
# validate them.
CUSTOM_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
SEED_LIVENESS = {
    "httpGet": {"path": "/_health_docker", "port": "http"},
    "initialDelaySeconds": 30,
    "periodSeconds": 10,
    "timeoutSeconds": 5,
    "failureThreshold": 3,
}
SEED_READINESS = {
    "httpGet": {"path": "/_health_ro", "port": "http"},
    "initialDelaySeconds": 10,
    "periodSeconds": 5,
    "timeoutSeconds": 3,
    "failureThreshold": 2,
}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Every app container has probes: api, web and index on their HTTP port, worker and cron on
# /_health of their metrics port (the main loop made progress recently).
PROBED = {"api", "web", "index", "worker", "cron"}
PROGRESS_PROBE = {"path": "/_health", "port": "metrics"}


def name(component: str) -> str:
    return f"{RELEASE}-acoustid-stack-{component}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_strictly_against_kubernetes(
    rendered: Rendered, version: str
) -> None:
    seen: set[str] = set()
    for obj in rendered.objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        text = json.dumps(obj, sort_keys=True)
        if text in seen:
            continue
        seen.add(text)
        kubernetes_validate.validate(obj, version, strict=True)


def test_every_container_has_requests_limits_and_the_restricted_security_context(
    rendered: Rendered,
) -> None:
    for obj, spec in rendered.pod_specs():
        where = f"{obj['kind']} {obj['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        for container in spec["containers"] + spec.get("initContainers", []):
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) == {"cpu", "memory"}, where
            assert container["securityContext"] == RESTRICTED_CONTAINER, where


def test_serving_containers_have_probes_and_the_api_and_web_ones_are_the_seeds(
    rendered: Rendered,
) -> None:
    for obj, spec in rendered.pod_specs():
        for container in spec["containers"]:
            if container["name"] not in PROBED:
                continue
            assert "livenessProbe" in container, obj["metadata"]["name"]
            assert "readinessProbe" in container, obj["metadata"]["name"]
            if container["name"] in {"api", "web"}:
                assert container["livenessProbe"] == SEED_LIVENESS
                assert container["readinessProbe"] == SEED_READINESS
            if container["name"] in {"worker", "cron"}:
                assert container["livenessProbe"]["httpGet"] == PROGRESS_PROBE
                assert container["readinessProbe"]["httpGet"] == PROGRESS_PROBE
                ports = {p["name"]: p["containerPort"] for p in container["ports"]}
                port_args = container["args"][container["args"].index("--metrics-port") + 1]
                assert str(ports["metrics"]) == port_args


def test_production_renders_four_index_shards_with_one_terabyte_volumes(
    rendered_sets: dict[str, Rendered],
) -> None:
    production = rendered_sets["production"]
    shards = production.of_kind("StatefulSet")
    assert [s["metadata"]["name"] for s in shards] == [name(f"index-{n}") for n in range(4)]
    for shard in shards:
        (claim,) = shard["spec"]["volumeClaimTemplates"]
        assert claim["spec"]["resources"]["requests"]["storage"] == "1Ti"
        assert shard["spec"]["replicas"] == 1
    headless = [s for s in production.of_kind("Service") if s["spec"].get("clusterIP") == "None"]
    assert len(headless) == 4
    assert len(production.of_kind("CronJob")) == 4


def test_production_worker_autoscales_from_the_tables_eight_upwards(
    rendered_sets: dict[str, Rendered],
) -> None:
    hpa = rendered_sets["production"].named("HorizontalPodAutoscaler", name("worker"))
    worker = load_sizing().profile("production").component("worker")
    assert hpa["spec"]["minReplicas"] == worker.instances == 8
    assert hpa["spec"]["maxReplicas"] == worker.max_instances > 8
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] > 0
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_production_has_a_disruption_budget_for_api_web_and_the_index(
    rendered_sets: dict[str, Rendered],
) -> None:
    budgets = rendered_sets["production"].of_kind("PodDisruptionBudget")
    assert sorted(b["metadata"]["name"] for b in budgets) == [
        name("api"),
        name("index"),
        name("web"),
    ]


def test_minimum_renders_one_of_each(rendered_sets: dict[str, Rendered]) -> None:
    minimum = rendered_sets["minimum"]
    (shard,) = minimum.of_kind("StatefulSet")
    assert shard["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "50Gi"
    }
    hpa = minimum.named("HorizontalPodAutoscaler", name("worker"))
    assert hpa["spec"]["minReplicas"] == 1
    assert len(minimum.of_kind("PodDisruptionBudget")) == 3
    assert minimum.named("Deployment", name("cron"))["spec"]["replicas"] == 1
    assert len(minimum.of_kind("CronJob")) == 1


def test_pod_resources_are_the_sizing_tables(rendered_sets: dict[str, Rendered]) -> None:
    for profile_name in ("minimum", "production"):
        derived = load_sizing().profile(profile_name).derived
        rendered = rendered_sets[profile_name]
        for component in ("api", "web", "worker", "cron"):
            (container,) = rendered.named("Deployment", name(component))["spec"]["template"][
                "spec"
            ]["containers"]
            assert container["resources"] == derived.pods[component].as_kubernetes()
        for shard in rendered.of_kind("StatefulSet"):
            (container,) = shard["spec"]["template"]["spec"]["containers"]
            assert container["resources"] == derived.pods["index"].as_kubernetes()


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook(rendered: Rendered) -> None:
    job = rendered.named("Job", name("migrations"))
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert [*container["command"], *container["args"]] == ["acoustid-stack", "db", "upgrade"]
    # Release objects do not exist before install: the job mounts hook copies, created first.
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    config_map = rendered.named("ConfigMap", volumes["config"]["configMap"]["name"])
    assert int(config_map["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0


def test_each_app_component_runs_its_acoustid_stack_command(rendered: Rendered) -> None:
    for component in ("api", "worker", "cron"):
        deployment = rendered.named("Deployment", name(component))
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert [*container["command"], *container["args"]][:3] == [
            "acoustid-stack",
            "run",
            component,
        ]
    for shard in rendered.of_kind("StatefulSet"):
        (container,) = shard["spec"]["template"]["spec"]["containers"]
        assert container["args"][:4] == ["run", "index", "--dir", "/data"]
        assert container["args"][-2:] == ["--port", "6081"]


def test_index_shard_list_in_the_config_names_every_shard_service(rendered: Rendered) -> None:
    conf = rendered.named("ConfigMap", f"{RELEASE}-acoustid-stack").get("data", {})
    (shards_line,) = [
        line for line in conf["acoustid.conf"].splitlines() if line.startswith("shards")
    ]
    urls = shards_line.split("=", 1)[1].strip().split(",")
    shard_services = [
        s["metadata"]["name"]
        for s in rendered.of_kind("Service")
        if s["spec"].get("clusterIP") == "None"
    ]
    assert urls == [f"http://{svc}.acoustid.svc:6081" for svc in shard_services]


def test_existing_secrets_are_mounted_and_the_chart_creates_no_secret(
    rendered_sets: dict[str, Rendered],
) -> None:
    rendered = rendered_sets["minimum"]
    assert rendered.of_kind("Secret") == []
    spec = rendered.named("Deployment", name("api"))["spec"]["template"]["spec"]
    (secrets,) = [v for v in spec["volumes"] if v["name"] == "secrets"]
    sources = {
        s["secret"]["name"]: s["secret"]["items"][0] for s in secrets["projected"]["sources"]
    }
    assert sources["acoustid-db-app"] == {"key": "password", "path": "database-password"}
    assert sources["acoustid-website"] == {"key": "secret", "path": "website-secret"}


def test_plain_passwords_reach_pods_only_as_files(rendered_sets: dict[str, Rendered]) -> None:
    rendered = rendered_sets["minimum-plain-passwords"]
    release_secret = rendered.named("Secret", f"{RELEASE}-acoustid-stack")
    assert set(release_secret["data"]) == {"database-password", "redis-password", "website-secret"}
    plain = {"db-password", "redis-password", "website-secret"}
    for _, spec in rendered.pod_specs():
        for container in spec["containers"]:
            for variable in container.get("env", []):
                assert "valueFrom" not in variable
                assert variable.get("value") not in plain
                if variable["name"].endswith(("PASSWORD_FILE", "SECRET_FILE")):
                    assert variable["value"].startswith("/etc/acoustid/secrets/")


def test_disabled_parts_render_nothing(rendered_sets: dict[str, Rendered]) -> None:
    rendered = rendered_sets["minimum-plain-passwords"]
    names = {(o["kind"], o["metadata"]["name"]) for o in rendered.objects}
    assert ("Deployment", name("web")) not in names
    assert rendered.named("Deployment", name("api"))["spec"]["replicas"] == 1
    assert rendered.of_kind("CronJob") == []
    assert not any(
        h["metadata"]["name"] == name("api") for h in rendered.of_kind("HorizontalPodAutoscaler")
    )


def test_everything_on_renders_ingress_servicemonitors_and_s3_snapshots(
    rendered_sets: dict[str, Rendered],
) -> None:
    rendered = rendered_sets["production-everything-on"]
    (ingress,) = rendered.of_kind("Ingress")
    assert ingress["spec"]["tls"][0]["secretName"] == "acoustid-tls"
    assert len(rendered.of_kind("ServiceMonitor")) == 2
    for cron_job in rendered.of_kind("CronJob"):
        spec = cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        assert env["DESTINATION"].startswith(":s3:acoustid-backups/acoustid/index/shard-")
        assert env["SNAPSHOT_URL"].endswith(":6081/fingerprints/_snapshot")
    assert rendered.of_kind("PersistentVolumeClaim") == []


def test_notes_say_how_to_reach_the_api_and_warn_about_plain_passwords(
    rendered_sets: dict[str, Rendered],
) -> None:
    assert (
        "port-forward svc/acoustid-acoustid-stack-api 5000:5000" in rendered_sets["minimum"].notes
    )
    assert "WARNING" not in rendered_sets["minimum"].notes
    notes = rendered_sets["minimum-plain-passwords"].notes
    assert "WARNING: database.auth.password is a plain value" in notes


def test_switching_network_policies_off_is_warned_about(render: Any) -> None:
    values = load_values("ci/existing-secrets-values.yaml")
    values["networkPolicy"] = {"enabled": False}
    rendered = render(values)
    assert rendered.of_kind("NetworkPolicy") == []
    assert "WARNING: networkPolicy.enabled=false" in rendered.notes

"""The third-party releases (NATS, redis-ha, CloudNativePG, its Barman Cloud plugin,
cert-manager) rendered from the real upstream charts at the pinned versions,
with exactly the values the program passes (both profiles, monitoring off and on): every key is
known to the chart, every object validates strictly for the supported Kubernetes range, every
pod is Guaranteed, the intended settings reach the objects, PDBs keep quorum, and the app is
wired to Services the charts create."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from crd_schemas import crd_errors, is_custom
from pulumi_harness import CRD_DIR, PROFILES, Deployment, deploy_stack, stack_args
from upstream_charts import (
    CHART_DIR,
    CHARTS_DIR,
    chart_defaults,
    pod_templates,
    qos_class,
    render_chart,
    render_release,
    unknown_keys,
)

from acoustid_stack.local.binaries import require_binary
from acoustid_stack.sizing import byte_quantity, load_sizing
from components.charts import (
    BARMAN_CLOUD,
    CERT_MANAGER,
    CLOUDNATIVE_PG,
    NATS,
    REDIS_HA,
    ChartRef,
)
from components.kube import pod_shares

pytestmark = [
    pytest.mark.deploy,
    pytest.mark.skipif(
        not CHARTS_DIR.is_dir() or not CRD_DIR.is_dir(),
        reason=f"charts/CRDs not found in {CHARTS_DIR.parent} (only CI checkouts have them)",
    ),
]
pytest.importorskip("helm_python", reason="needs the deploy extra")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

# Operator 1.30 of CloudNativePG supports Kubernetes 1.31 to 1.33: the range we support.
KUBERNETES_VERSIONS = ("1.31", "1.33")
CHARTS: dict[str, ChartRef] = {
    "nats": NATS,
    "redis-ha": REDIS_HA,
    "cloudnative-pg": CLOUDNATIVE_PG,
    "plugin-barman-cloud": BARMAN_CLOUD,
    "cert-manager": CERT_MANAGER,
}
# The charts whose pods hold our data (the operators' pods are stateless).
STATEFUL = {"nats": "nats", "redis-ha": "redis"}
# Maps of the charts' values.yaml that are free-form by design: container resources, the NATS
# chart's merge patches (Kubernetes objects, validated once rendered), redis.conf directives.
FREE_FORM: dict[str, frozenset[str]] = {
    "nats": frozenset(
        {
            "container.resources",
            "reloader.merge",
            "promExporter.merge",
            "podDisruptionBudget.merge",
            "podTemplate.topologySpreadConstraints",
            "config.merge",
            "container.env",
        }
    ),
    "redis-ha": frozenset(
        {
            "redis.config",
            "redis.resources",
            "sentinel.resources",
            "splitBrainDetection.resources",
            "init.resources",
            "exporter.resources",
            "podDisruptionBudget",
        }
    ),
    "cloudnative-pg": frozenset(),
    "plugin-barman-cloud": frozenset(),
    "cert-manager": frozenset(),
}
VARIANTS = [(profile, monitoring) for profile in PROFILES for monitoring in (False, True)]
OPERATOR_VARIANT = ("production", False)


@pytest.fixture(scope="module")
def deployments() -> dict[tuple[str, bool], Deployment]:
    return {
        (profile, monitoring): deploy_stack(stack_args(profile, monitoring=monitoring))
        for profile, monitoring in VARIANTS
    }


@pytest.fixture(scope="module")
def renders(
    deployments: dict[tuple[str, bool], Deployment],
) -> dict[tuple[str, bool, str], list[dict[str, Any]]]:
    return {
        (profile, monitoring, chart): render_release(deployment.release(chart))
        for (profile, monitoring), deployment in deployments.items()
        for chart in CHARTS
        if chart in STATEFUL or (profile, monitoring) == OPERATOR_VARIANT
    }


def variants(stateful_only: bool = False) -> list[Any]:
    """Each stateful chart per profile and monitoring switch; each operator chart once (the
    program passes them the same values whatever the profile)."""
    return [
        pytest.param(
            profile, monitoring, chart, id=f"{chart}-{profile}-{'mon' if monitoring else 'plain'}"
        )
        for profile, monitoring in VARIANTS
        for chart in CHARTS
        if chart in STATEFUL or (not stateful_only and (profile, monitoring) == OPERATOR_VARIANT)
    ]


@pytest.mark.parametrize(("profile", "monitoring", "chart"), variants())
def test_every_value_key_is_known_to_the_pinned_chart(
    deployments: dict[tuple[str, bool], Deployment], profile: str, monitoring: bool, chart: str
) -> None:
    values = deployments[(profile, monitoring)].release(chart).values
    assert (
        deployments[(profile, monitoring)].release(chart).inputs["version"] == CHARTS[chart].version
    )
    assert unknown_keys(values, chart_defaults(CHARTS[chart]), FREE_FORM[chart]) == []


def test_the_key_check_catches_a_misspelled_and_an_unlisted_free_form_key() -> None:
    defaults = chart_defaults(REDIS_HA)
    values = {"sentinel": {"quorom": 2}, "haproxy": {"resources": {"limits": {"cpu": "1"}}}}
    assert unknown_keys(values, defaults, FREE_FORM["redis-ha"]) == [
        "sentinel.quorom",
        "haproxy.resources (free-form map not listed)",
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("profile", "monitoring", "chart"), variants())
def test_every_rendered_object_validates_strictly(
    renders: dict[tuple[str, bool, str], list[dict[str, Any]]],
    profile: str,
    monitoring: bool,
    chart: str,
    version: str,
) -> None:
    objects = renders[(profile, monitoring, chart)]
    assert objects
    for obj in objects:
        if is_custom(obj):
            assert crd_errors(obj) == [], f"{obj['kind']} {obj['metadata']['name']}"
        else:
            kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize(("profile", "monitoring", "chart"), variants(stateful_only=True))
def test_every_pod_is_guaranteed_and_fits_its_machine_share(
    renders: dict[tuple[str, bool, str], list[dict[str, Any]]],
    profile: str,
    monitoring: bool,
    chart: str,
) -> None:
    component = STATEFUL[chart]
    size = load_sizing().profile(profile).component(component)
    pods = list(pod_templates(renders[(profile, monitoring, chart)]))
    assert [obj["kind"] for obj, _ in pods] == ["StatefulSet"]
    for obj, spec in pods:
        assert qos_class(spec) == "Guaranteed", f"{obj['metadata']['name']} is not Guaranteed"
        limits = [c["resources"]["limits"] for c in spec["containers"]]
        helpers = len(limits) - 1
        shares = pod_shares(size, helpers=helpers)
        assert limits[0] == shares.server["limits"]
        assert all(other == shares.helper["limits"] for other in limits[1:])
        # The whole pod stays within the table's share of its machine.
        assert sum(_millicores(limit["cpu"]) for limit in limits) <= size.budget_cpu * 1000
        assert sum(_bytes(limit["memory"]) for limit in limits) <= size.budget_memory
    names = {
        c["name"]
        for _, spec in pods
        for c in [*spec["containers"], *spec.get("initContainers", [])]
    }
    expected = {
        "nats": {"nats", "reloader"} | ({"prom-exporter"} if monitoring else set()),
        "redis-ha": {"config-init", "redis", "sentinel", "split-brain-fix"}
        | ({"redis-exporter"} if monitoring else set()),
    }[chart]
    assert names == expected


def test_the_qos_check_sees_a_helper_without_resources() -> None:
    sized = {"limits": {"cpu": "1", "memory": "1Gi"}}
    spec = {"containers": [{"name": "redis", "resources": sized}, {"name": "sentinel"}]}
    assert qos_class(spec) == "Burstable"
    spec["initContainers"] = [{"name": "init", "resources": {"requests": {"cpu": "1"}}}]
    spec["containers"][1]["resources"] = sized
    assert qos_class(spec) == "Burstable"
    spec["initContainers"][0]["resources"] = sized
    assert qos_class(spec) == "Guaranteed"


def _millicores(quantity: str) -> float:
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def _bytes(quantity: str) -> int:
    units = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4}
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?", quantity)
    assert match, quantity
    return int(match.group(1)) * 1024 ** units.get(match.group(2) or "", 0)


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [obj for obj in objects if obj["kind"] == kind]
    return found


@pytest.mark.parametrize("profile", PROFILES)
def test_nats_settings_reach_the_statefulset_and_its_config(
    renders: dict[tuple[str, bool, str], list[dict[str, Any]]], profile: str
) -> None:
    sizing = load_sizing().profile(profile)
    size = sizing.component("nats")
    objects = renders[(profile, False, "nats")]
    statefulset = _one(objects, "StatefulSet")
    assert statefulset["spec"]["replicas"] == size.instances
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == byte_quantity(size.disk)
    conf = _one(objects, "ConfigMap")["data"]["nats.conf"]
    jetstream = sizing.derived.jetstream
    assert f'"max_file_store": {byte_quantity(jetstream.max_file_store)}' in conf
    assert f'"max_memory_store": {byte_quantity(jetstream.max_memory_store)}' in conf
    assert ('"cluster"' in conf) is (size.instances > 1)


@pytest.mark.parametrize("profile", PROFILES)
def test_the_real_nats_server_accepts_the_rendered_configuration(
    renders: dict[tuple[str, bool, str], list[dict[str, Any]]], profile: str, tmp_path: Path
) -> None:
    """nats.conf as the chart renders it (sizes like ``400Gi``, ``$NATS_PASSWORD``) parses in
    the server itself; the pod's environment provides the variables."""
    conf = tmp_path / "nats.conf"
    conf.write_text(_one(renders[(profile, False, "nats")], "ConfigMap")["data"]["nats.conf"])
    env = {"PATH": os.environ["PATH"], "SERVER_NAME": "acoustid-nats-0", "NATS_PASSWORD": "x"}
    checked = subprocess.run(
        [str(require_binary("nats-server")), "-c", str(conf), "-t"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "is valid" in checked.stdout + checked.stderr


@pytest.mark.parametrize("profile", PROFILES)
def test_redis_settings_reach_the_statefulset_and_its_config(
    renders: dict[tuple[str, bool, str], list[dict[str, Any]]], profile: str
) -> None:
    sizing = load_sizing().profile(profile)
    size = sizing.component("redis")
    objects = renders[(profile, False, "redis-ha")]
    statefulset = _one(objects, "StatefulSet")
    assert statefulset["spec"]["replicas"] == size.instances
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == byte_quantity(size.disk)
    config = next(o for o in objects if o["kind"] == "ConfigMap" and "redis.conf" in o["data"])
    redis_conf = config["data"]["redis.conf"].splitlines()
    for directive in (
        "appendonly yes",
        "appendfsync everysec",
        f"maxmemory {sizing.derived.redis.maxmemory}",
    ):
        assert directive in redis_conf
    assert f'QUORUM="{size.instances // 2 + 1}"' in config["data"]["init.sh"]
    # maxmemory leaves the server container room for the fork of an AOF rewrite.
    (server,) = [
        c for c in statefulset["spec"]["template"]["spec"]["containers"] if c["name"] == "redis"
    ]
    assert sizing.derived.redis.maxmemory < _bytes(server["resources"]["limits"]["memory"])


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("chart", sorted(STATEFUL))
def test_every_stateful_workload_has_a_pdb_that_keeps_quorum(
    renders: dict[tuple[str, bool, str], list[dict[str, Any]]], profile: str, chart: str
) -> None:
    objects = renders[(profile, False, chart)]
    statefulset = _one(objects, "StatefulSet")
    replicas = statefulset["spec"]["replicas"]
    quorum = replicas // 2 + 1
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    budgets = [
        pdb
        for pdb in objects
        if pdb["kind"] == "PodDisruptionBudget"
        and pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    assert len(budgets) == 1, f"{chart}: expected one PDB over its pods, found {len(budgets)}"
    spec = budgets[0]["spec"]
    always_up = (
        spec["minAvailable"] if "minAvailable" in spec else replicas - spec["maxUnavailable"]
    )
    assert always_up >= quorum


@pytest.fixture(scope="module")
def app_renders(deployments: dict[tuple[str, bool], Deployment]) -> dict[str, list[dict[str, Any]]]:
    """Our chart rendered with the values of the program's release, per profile."""
    return {
        profile: render_chart(CHART_DIR, deployments[(profile, False)].release("acoustid-stack"))
        for profile in PROFILES
    }


def _app_conf(objects: list[dict[str, Any]]) -> configparser.ConfigParser:
    # The running pods' ConfigMap (the migration hook has its own copy).
    (config_map,) = [
        o
        for o in objects
        if "acoustid.conf" in o.get("data", {}) and not o["metadata"].get("annotations")
    ]
    conf = configparser.ConfigParser(interpolation=None)
    conf.read_string(config_map["data"]["acoustid.conf"])
    return conf


@pytest.mark.parametrize("profile", PROFILES)
def test_every_host_in_acoustid_conf_is_a_service_of_those_charts(
    deployments: dict[tuple[str, bool], Deployment],
    renders: dict[tuple[str, bool, str], list[dict[str, Any]]],
    app_renders: dict[str, list[dict[str, Any]]],
    profile: str,
) -> None:
    deployment = deployments[(profile, False)]
    services = {
        (
            f"{obj['metadata']['name']}.{deployment.release(chart).inputs['namespace']}.svc",
            port["port"],
        )
        for chart in STATEFUL
        for obj in renders[(profile, False, chart)]
        if obj["kind"] == "Service"
        for port in obj["spec"]["ports"]
    }
    conf = _app_conf(app_renders[profile])
    endpoints = [
        *conf["redis"]["sentinels"].split(","),
        *(url.split("://")[1] for url in conf["nats"]["servers"].split(",")),
    ]
    assert len(endpoints) == load_sizing().profile(profile).component("redis").instances + 1
    for endpoint in endpoints:
        host, port = endpoint.rsplit(":", 1)
        assert (host, int(port)) in services, f"{endpoint} is no Service of the NATS/Redis charts"


@pytest.mark.parametrize("profile", PROFILES)
def test_nats_requires_the_password_the_app_reads_from_the_same_secret(
    renders: dict[tuple[str, bool, str], list[dict[str, Any]]],
    app_renders: dict[str, list[dict[str, Any]]],
    profile: str,
) -> None:
    objects = renders[(profile, False, "nats")]
    nats_conf = _one(objects, "ConfigMap")["data"]["nats.conf"]
    # The password is an environment reference, never the value, in the ConfigMap.
    assert re.search(r'"password": \$NATS_PASSWORD\b', nats_conf), nats_conf
    user = re.search(r'"authorization": \{[^}]*"user": "([^"]+)"', nats_conf)
    assert user is not None
    (server,) = [
        c
        for c in _one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"]
        if c["name"] == "nats"
    ]
    (env,) = [e for e in server["env"] if e["name"] == "NATS_PASSWORD"]
    server_secret = env["valueFrom"]["secretKeyRef"]

    app = app_renders[profile]
    assert _app_conf(app)["nats"]["user"] == user.group(1)
    api = next(
        o for o in app if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-api")
    )
    spec = api["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    (password_file,) = [e for e in container["env"] if e["name"] == "ACOUSTID_NATS_PASSWORD_FILE"]
    (secrets,) = [v for v in spec["volumes"] if v["name"] == "secrets"]
    file_name = password_file["value"].rsplit("/", 1)[1]
    sources = [
        (source["secret"]["name"], item["key"])
        for source in secrets["projected"]["sources"]
        for item in source["secret"]["items"]
        if item["path"] == file_name
    ]
    assert sources == [(server_secret["name"], server_secret["key"])]

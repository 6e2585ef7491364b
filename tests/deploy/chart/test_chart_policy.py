"""Cluster policy over every rendered object: pinned images, no host access, no privilege,
and no pod without a NetworkPolicy."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Rendered

pytestmark = pytest.mark.deploy


def images(spec: dict[str, Any]) -> list[str]:
    return [c["image"] for c in spec["containers"] + spec.get("initContainers", [])]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels + In/NotIn/Exists/DoesNotExist)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def pod_labels(obj: dict[str, Any]) -> dict[str, str]:
    if obj["kind"] == "Pod":
        return dict(obj["metadata"]["labels"])
    if obj["kind"] == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"])
    return dict(obj["spec"]["template"]["metadata"]["labels"])


def test_no_image_is_latest_or_untagged(rendered: Rendered) -> None:
    for obj, spec in rendered.pod_specs():
        for image in images(spec):
            reference = image.rsplit("/", 1)[-1]
            assert ":" in reference or "@" in reference, f"{obj['metadata']['name']}: {image}"
            assert not reference.endswith(":latest"), f"{obj['metadata']['name']}: {image}"


def test_no_pod_touches_the_host_or_runs_privileged(rendered: Rendered) -> None:
    for obj, spec in rendered.pod_specs():
        where = f"{obj['kind']} {obj['metadata']['name']}"
        assert not any("hostPath" in volume for volume in spec.get("volumes", [])), where
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), where
        for container in spec["containers"]:
            context = container.get("securityContext", {})
            assert context.get("privileged") is False, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert not context.get("capabilities", {}).get("add"), where
            assert not any("hostPort" in port for port in container.get("ports", [])), where


def test_every_pod_is_covered_by_ingress_and_egress_network_policies(rendered: Rendered) -> None:
    policies = rendered.of_kind("NetworkPolicy")
    for obj, _ in rendered.pod_specs():
        labels = pod_labels(obj)
        covering = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        types = {t for p in covering for t in p["spec"]["policyTypes"]}
        assert types == {"Ingress", "Egress"}, f"{obj['kind']} {obj['metadata']['name']}"


def test_only_api_and_web_accept_traffic_from_the_ingress_namespace(rendered: Rendered) -> None:
    ingress_namespace = "ingress-nginx"
    open_to_ingress = {
        p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for p in rendered.of_kind("NetworkPolicy")
        for rule in p["spec"].get("ingress", [])
        for peer in rule.get("from", [])
        if peer.get("namespaceSelector", {})
        .get("matchLabels", {})
        .get("kubernetes.io/metadata.name")
        == ingress_namespace
    }
    expected = {"api", "web"} if rendered.values.get("web", {}).get("enabled", True) else {"api"}
    assert open_to_ingress == expected


def test_every_stateful_pod_is_guaranteed_and_has_a_disruption_budget(rendered: Rendered) -> None:
    """Index shards hold data: node pressure must evict them last (Guaranteed QoS: every
    container, init ones too, with cpu and memory limits and requests equal to them), and a
    drain must not take a shard down behind the PDB's back."""
    budgets = rendered.of_kind("PodDisruptionBudget")
    statefulsets = rendered.of_kind("StatefulSet")
    assert statefulsets
    for obj in statefulsets:
        where = f"StatefulSet {obj['metadata']['name']}"
        spec = obj["spec"]["template"]["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            resources = container.get("resources", {})
            limits = resources.get("limits", {})
            assert {"cpu", "memory"} <= limits.keys(), where
            assert {**limits, **resources.get("requests", {})} == limits, where
        assert any(selects(b["spec"]["selector"], pod_labels(obj)) for b in budgets), where

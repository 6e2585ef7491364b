"""Render the third-party charts the program installs, offline, with the values it passes.

The charts are the upstream releases at our pinned versions, packaged in ``../shared/charts``
(only CI checkouts have that folder). What a cluster would really get is checked on the rendered
objects: value keys the chart does not know (Helm ignores them silently), QoS classes, PDBs.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pulumi_harness import REPO, Registered

from components.charts import ChartRef

CHARTS_DIR = REPO.parent / "shared" / "charts"
CHART_DIR = REPO / "charts" / "acoustid-stack"
HOOK = "helm.sh/hook"
# How Helm splits a template's output into objects (releaseutil.SplitManifests): cert-manager's
# templates emit "---# comment", which a YAML stream parser refuses.
MANIFEST_SEPARATOR = re.compile(r"(?:^|\s*\n)---\s*")


def chart_archive(ref: ChartRef) -> str:
    """The packaged chart of ``ref`` (cert-manager tags its archives with a leading v)."""
    for name in (f"{ref.chart}-{ref.version}.tgz", f"{ref.chart}-v{ref.version}.tgz"):
        if (CHARTS_DIR / name).is_file():
            return str(CHARTS_DIR / name)
    raise FileNotFoundError(f"no archive of {ref.chart} {ref.version} in {CHARTS_DIR}")


def integral(value: Any) -> Any:
    """``value`` with whole floats as ints: Pulumi's mocks turn every number into a float."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [integral(item) for item in value]
    return value


def render_release(release: Registered) -> list[dict[str, Any]]:
    """The objects ``helm install`` of a third-party ``release`` creates (test hooks excluded:
    a Pulumi release never runs them)."""
    ref = ChartRef("", release.inputs["chart"], release.inputs["version"])
    return render_chart(Path(chart_archive(ref)), release)


def render_chart(chart_path: Path, release: Registered) -> list[dict[str, Any]]:
    """The objects ``helm install`` of the chart at ``chart_path`` with ``release``'s inputs
    creates."""
    import helm_python

    with helm_python.Chart.load(chart_path) as chart:
        manifests = chart.render(
            integral(release.values),
            name=release.inputs["name"],
            namespace=release.inputs["namespace"],
            is_install=True,
        )
    objects = [
        doc
        for path, text in sorted(manifests.items())
        if not path.endswith(".txt")
        for part in MANIFEST_SEPARATOR.split(text)
        if (doc := yaml.safe_load(part))
    ]
    return [obj for obj in objects if not _is_test_hook(obj)]


def _is_test_hook(obj: dict[str, Any]) -> bool:
    hooks = (obj["metadata"].get("annotations") or {}).get(HOOK, "")
    # "test" and its Helm 2 spelling "test-success" (redis-ha still uses it).
    return any(hook.strip() in {"test", "test-success"} for hook in hooks.split(","))


def chart_defaults(ref: ChartRef) -> dict[str, Any]:
    """The chart's values.yaml as written (Helm's merged values drop the keys set to null,
    which the chart still reads)."""
    with tarfile.open(chart_archive(ref)) as archive:
        member = archive.extractfile(f"{ref.chart}/values.yaml")
        assert member is not None
        defaults: dict[str, Any] = yaml.safe_load(member.read())
    return defaults


def unknown_keys(
    values: dict[str, Any], defaults: dict[str, Any], free_form: frozenset[str], path: str = ""
) -> list[str]:
    """Keys of ``values`` the chart's values.yaml does not declare. Below an empty map of the
    defaults anything goes only if its path is listed in ``free_form`` (resources, merge
    patches, redis.conf directives); an unlisted empty map is reported too, so that a new
    free-form use is a decision, not an accident."""
    found: list[str] = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        if key not in defaults:
            found.append(where)
            continue
        default = defaults[key]
        if where in free_form:
            continue
        if isinstance(value, dict) and isinstance(default, dict):
            if not default and value:
                found.append(f"{where} (free-form map not listed)")
            else:
                found += unknown_keys(value, default, free_form, where)
    return found


def pod_templates(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(object, pod spec) of every object that runs pods."""
    for obj in objects:
        kind = obj["kind"]
        if kind == "Pod":
            yield obj, obj["spec"]
        elif kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield obj, obj["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield obj, obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def qos_class(spec: dict[str, Any]) -> str:
    """The QoS class the kubelet gives a pod of ``spec`` (Kubernetes' GetPodQOS): Guaranteed
    only if every container, init containers included, has cpu and memory limits and requests
    equal to them (a missing request defaults to the limit)."""
    containers = [*spec.get("initContainers", []), *spec["containers"]]
    guaranteed = True
    anything = False
    for container in containers:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = {**limits, **(resources.get("requests") or {})}
        anything = anything or bool(limits or requests)
        for kind in ("cpu", "memory"):
            if kind not in limits or str(requests[kind]) != str(limits[kind]):
                guaranteed = False
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if anything else "BestEffort"

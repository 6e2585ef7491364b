"""Render charts/acoustid-stack offline (helm-python-sdk), once per value set per session."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

helm_python = pytest.importorskip("helm_python", reason="needs the deploy extra")

REPO = Path(__file__).resolve().parents[3]
CHART_DIR = REPO / "charts" / "acoustid-stack"
CRD_DIR = REPO.parent / "shared" / "crds"
RELEASE = "acoustid"
NAMESPACE = "acoustid"

# name -> value files merged in order (later wins), as `helm install -f a -f b` would.
VALUE_SETS: dict[str, tuple[str, ...]] = {
    "minimum": ("values-minimum.yaml", "ci/existing-secrets-values.yaml"),
    "production": ("values-production.yaml", "ci/existing-secrets-values.yaml"),
    "production-everything-on": ("values-production.yaml", "ci/everything-on-values.yaml"),
    "minimum-plain-passwords": ("values-minimum.yaml", "ci/plain-passwords-values.yaml"),
}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_values(*files: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in files:
        values = deep_merge(values, yaml.safe_load((CHART_DIR / name).read_text()) or {})
    return values


@dataclass(frozen=True)
class Rendered:
    """One rendering: the parsed objects and NOTES.txt."""

    values: dict[str, Any]
    objects: list[dict[str, Any]]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        matches = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
        return matches[0]

    def pod_specs(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(object, pod template spec) of every object that runs pods."""
        for obj in self.objects:
            spec = pod_spec_of(obj)
            if spec is not None:
                yield obj, spec


def pod_spec_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj["kind"]
    if kind == "Pod":
        return dict(obj["spec"])
    if kind in {"Deployment", "StatefulSet", "Job"}:
        return dict(obj["spec"]["template"]["spec"])
    if kind == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return None


@pytest.fixture(scope="session")
def chart() -> Iterator[Any]:
    with helm_python.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart: Any) -> Callable[[dict[str, Any]], Rendered]:
    """Render values (merged over the chart defaults by Helm itself)."""
    cache: dict[str, Rendered] = {}

    def _render(values: dict[str, Any]) -> Rendered:
        key = yaml.safe_dump(values, sort_keys=True)
        if key not in cache:
            manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
            objects = [
                doc
                for path, text in sorted(manifests.items())
                if not path.endswith("NOTES.txt")
                for doc in yaml.safe_load_all(text)
                if doc
            ]
            notes = next((t for p, t in manifests.items() if p.endswith("NOTES.txt")), "")
            cache[key] = Rendered(values=values, objects=objects, notes=notes)
        return cache[key]

    return _render


@pytest.fixture(scope="session")
def rendered_sets(render: Callable[[dict[str, Any]], Rendered]) -> dict[str, Rendered]:
    return {name: render(load_values(*files)) for name, files in VALUE_SETS.items()}


@pytest.fixture(params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, rendered_sets: dict[str, Rendered]) -> Rendered:
    """Each value set in turn (rendered once per session)."""
    return rendered_sets[request.param]

"""Custom resources (ServiceMonitor) validate against the published CRD schemas."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .conftest import CRD_DIR, Rendered

pytestmark = [
    pytest.mark.deploy,
    pytest.mark.skipif(
        not CRD_DIR.is_dir(),
        reason=f"CRD schemas not found at {CRD_DIR} (only CI checkouts have ../shared/crds)",
    ),
]

jsonschema = pytest.importorskip("jsonschema")


def crd_schema(file: str, version: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRD_DIR / file).read_text())
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return dict(entry["schema"]["openAPIV3Schema"])


def unknown_fields(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the API server would prune: the strictness kubernetes-validate gives built-ins."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key not in schema["properties"]:
                found.append(f"{path}.{key}")
            else:
                found += unknown_fields(item, schema["properties"][key], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{index}]")
    return found


def test_service_monitors_match_the_prometheus_operator_crd(
    rendered_sets: dict[str, Rendered],
) -> None:
    schema = crd_schema("monitoring.coreos.com_servicemonitors.yaml", "v1")
    monitors = rendered_sets["production-everything-on"].of_kind("ServiceMonitor")
    assert len(monitors) == 2
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        jsonschema.Draft7Validator(schema).validate(monitor)
        assert unknown_fields(monitor["spec"], schema["properties"]["spec"], "spec") == []


def test_the_strict_check_catches_a_misspelled_field() -> None:
    schema = crd_schema("monitoring.coreos.com_servicemonitors.yaml", "v1")["properties"]["spec"]
    assert unknown_fields({"endpoints": [{"intervall": "30s"}]}, schema, "spec") == [
        "spec.endpoints[0].intervall"
    ]

"""Validate custom resources as the API server would, against the CRDs of the versions we pin
(``../shared/crds``): schema errors, and every field the schema does not declare, which the
API server would prune without a word."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml
from pulumi_harness import CRD_DIR


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every version served by the CRDs in CRD_DIR."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served", True):
                schema = version["schema"]["openAPIV3Schema"]
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def is_custom(manifest: dict[str, Any]) -> bool:
    return (manifest["apiVersion"], manifest["kind"]) in crd_schemas()


def crd_errors(manifest: dict[str, Any]) -> list[str]:
    """Why the API server would reject or prune parts of ``manifest`` (empty: it would not)."""
    import jsonschema

    key = (manifest["apiVersion"], manifest["kind"])
    schema = crd_schemas().get(key)
    if schema is None:
        return [f"no CRD in {CRD_DIR} serves {key[0]} {key[1]}"]
    validator = jsonschema.Draft202012Validator(schema)
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(manifest)
    ]
    for field in ("spec", "status"):
        if field in manifest and field in schema.get("properties", {}):
            errors += [
                f"{path}: not in the schema (pruned)"
                for path in undeclared_fields(manifest[field], schema["properties"][field], field)
            ]
    return errors


def undeclared_fields(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict) and "properties" in schema:
        missing = []
        for key, item in value.items():
            if key not in schema["properties"]:
                missing.append(f"{path}.{key}")
            else:
                missing += undeclared_fields(item, schema["properties"][key], f"{path}.{key}")
        return missing
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return [
            missing
            for key, item in value.items()
            for missing in undeclared_fields(item, schema["additionalProperties"], f"{path}.{key}")
        ]
    if isinstance(value, list) and "items" in schema:
        return [
            missing
            for i, item in enumerate(value)
            for missing in undeclared_fields(item, schema["items"], f"{path}[{i}]")
        ]
    return []

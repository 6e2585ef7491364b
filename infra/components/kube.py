"""Small Kubernetes helpers shared by the components: sizes as quantities, value merging."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from acoustid_stack.sizing import ComponentSize, byte_quantity, cpu_quantity


def machine_resources(size: ComponentSize) -> dict[str, dict[str, str]]:
    """Requests and limits of a stateful server that owns its machine share (``size``).

    Requests equal limits: databases and brokers get Guaranteed QoS, so node pressure evicts
    stateless pods first and never OOM-kills a primary that stayed within its budget.
    """
    quantities = {"cpu": cpu_quantity(size.budget_cpu), "memory": byte_quantity(size.budget_memory)}
    return {"requests": dict(quantities), "limits": dict(quantities)}


def disk_quantity(size: ComponentSize) -> str:
    """The volume size of one instance: the table's disk."""
    return byte_quantity(size.disk)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base`` (nested mappings merged, everything else replaced), as
    ``helm install -f base -f override`` merges value files."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def service_host(name: str, namespace: str) -> str:
    """Cluster DNS name of a Service; fully qualified so pods in any namespace resolve it."""
    return f"{name}.{namespace}.svc"

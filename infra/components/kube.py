"""Small Kubernetes helpers shared by the components: sizes as quantities, value merging."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acoustid_stack.sizing import MIB, ComponentSize, byte_quantity, cpu_quantity

Resources = dict[str, dict[str, str]]

# Helper containers next to a server (config reloaders, exporters, the Sentinel next to Redis,
# init containers) together get 1/HELPER_SHARE of the pod's machine budget, split evenly; the
# server keeps the rest, so the whole pod stays within the table's share of its machine.
HELPER_SHARE = 8


def machine_resources(size: ComponentSize) -> Resources:
    """Requests and limits of a stateful server that owns its machine share (``size``) alone.

    Requests equal limits: databases and brokers get Guaranteed QoS, so node pressure evicts
    stateless pods first and never OOM-kills a primary that stayed within its budget.
    """
    return _guaranteed(_millicores(size.budget_cpu), size.budget_memory)


@dataclass(frozen=True)
class PodShares:
    """Guaranteed resources of a server container and of each helper container in its pod."""

    server: Resources
    helper: Resources


def pod_shares(size: ComponentSize, helpers: int) -> PodShares:
    """Split ``size``'s machine budget between the server and ``helpers`` containers that run
    beside it (init containers run before them and take a helper's share while they do).
    Every container gets requests = limits: one container without them makes the pod
    Burstable, and node pressure would then evict it before stateless pods."""
    total_cpu = _millicores(size.budget_cpu)
    helper_cpu = total_cpu // (HELPER_SHARE * helpers)
    helper_memory = size.budget_memory // (HELPER_SHARE * helpers) // MIB * MIB
    return PodShares(
        server=_guaranteed(
            total_cpu - helpers * helper_cpu, size.budget_memory - helpers * helper_memory
        ),
        helper=_guaranteed(helper_cpu, helper_memory),
    )


def _millicores(cores: float) -> int:
    return math.floor(cores * 1000)


def _guaranteed(millicores: int, memory: int) -> Resources:
    quantities = {"cpu": cpu_quantity(millicores / 1000), "memory": byte_quantity(memory)}
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

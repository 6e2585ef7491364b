"""The hardware table (``sizing.yaml``) and every setting derived from it, computed once.

Contract: ``load_sizing(path=None)`` reads the built-in table, adds or replaces profiles from
``path`` (a user's YAML in the same format), validates everything and returns a ``Sizing``.
A bad file raises ``SizingError`` (a ``UserError``) naming the field, e.g.
``profiles.minimum.components.redis.memory: invalid size '1X' (use e.g. 512M, 4G, 2T)``.

``sizing.profile("production").component("index").instances`` is the hardware; ``.derived``
holds typed settings for PostgreSQL, Redis, JetStream, the index, Kubernetes pods and
autoscaling. ``helm_values``, ``ansible_vars`` and ``to_dict`` are the exports the chart,
the Ansible roles and the Pulumi program read; no face computes a size on its own.

``PROCESS_CONNECTIONS`` sizes the database pools of every process kind: the processes open
their pools with it, and PostgreSQL's max_connections is derived from it (processes per pod ×
pools × pods at the autoscaling ceiling), so the budget is what the pools can hold.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from acoustid_stack.errors import UserError

ComponentName = Literal["postgresql", "redis", "nats", "index", "api", "web", "worker", "cron"]
COMPONENTS: tuple[ComponentName, ...] = get_args(ComponentName)
# Pods that run our image; their pool sizes drive PostgreSQL's max_connections.
APP_COMPONENTS: tuple[ComponentName, ...] = ("api", "web", "worker", "cron")
# Scaled by a HorizontalPodAutoscaler; cron stays at its instances (leader election).
AUTOSCALED_COMPONENTS: tuple[ComponentName, ...] = ("api", "web", "worker")
Storage = Literal["hdd", "ssd", "nvme"]

KIB = 1024
MIB = KIB**2
GIB = KIB**3
TIB = KIB**4
_UNITS = {"": 1, "K": KIB, "M": MIB, "G": GIB, "T": TIB}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B?)?\s*$", re.IGNORECASE)
_MILLICORES = re.compile(r"^\s*(\d+)m\s*$")

# PostgreSQL connections kept beyond our pods' pools: superusers, replication, backups,
# migrations and one-shot commands (`db upgrade`, `index rebuild`, drills).
RESERVED_CONNECTIONS = 20
# app, fingerprint and ingest: every process opens one pool per database
DATABASES = 3


class SizingError(UserError):
    """The sizing table is invalid; the message names the field and how to fix it."""


def parse_size(value: object) -> int:
    """Bytes from ``512M``, ``4G``, ``2T``, ``11.5G`` (binary units) or a plain byte count."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r} (use e.g. 512M, 4G, 2T)")
    if isinstance(value, int | float):
        size = float(value)
    else:
        match = _SIZE.match(str(value))
        if match is None:
            raise ValueError(f"invalid size {value!r} (use e.g. 512M, 4G, 2T)")
        size = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if size <= 0:
        raise ValueError(f"size must be positive, got {value!r}")
    return int(size)


def parse_cpu(value: object) -> float:
    """Cores from ``2``, ``0.5`` or Kubernetes millicores ``500m``."""
    if isinstance(value, bool):
        raise ValueError(f"invalid cpu {value!r} (use cores like 2 or 0.5, or 500m)")
    if isinstance(value, str) and (match := _MILLICORES.match(value)):
        cores = int(match.group(1)) / 1000
    else:
        try:
            cores = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"invalid cpu {value!r} (use cores like 2 or 0.5, or 500m)") from None
    if not cores > 0 or math.isinf(cores):
        raise ValueError(f"cpu must be a positive number of cores, got {value!r}")
    return cores


Bytes = Annotated[int, BeforeValidator(parse_size)]
Cores = Annotated[float, BeforeValidator(parse_cpu)]
Count = Annotated[int, Field(strict=True, ge=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ComponentEntry(_Strict):
    cpu: Cores | None = None
    memory: Bytes | None = None
    disk: Bytes | None = None
    instances: Count
    max_instances: Count | None = None
    storage: Storage = "ssd"
    colocated_with: ComponentName | None = None
    notes: str = ""


class _TotalsEntry(_Strict):
    cpu: Cores
    memory: Bytes
    disk: Bytes


class _ProfileEntry(_Strict):
    description: str = ""
    totals: _TotalsEntry | None = None
    components: dict[ComponentName, _ComponentEntry]


class _SizingFile(_Strict):
    profiles: dict[str, _ProfileEntry]


# --------------------------------------------------------------------------- connections


@dataclass(frozen=True)
class ProcessConnections:
    """The PostgreSQL connections one process of ours holds at most, pool by pool.

    Every pool is bounded (SQLAlchemy ``max_overflow=0``, psycopg_pool ``max_size``): a request
    that finds its pool busy waits up to ``[database] pool_timeout`` instead of connecting.
    ``engine``: each of the three read-write SQLAlchemy engines (app, fingerprint, ingest);
    ``health_engine``: each engine of the api's health checks, one set on the read-write and
    one on the read-only databases (a single set when no replica is configured, counted as
    two so the figure holds either way); ``reader``: the api's lookup reader; ``session``:
    connections outside any pool.
    """

    engine: int
    health_engine: int = 0
    reader: int = 0
    session: int = 0

    @property
    def total(self) -> int:
        engines = self.engine + 2 * self.health_engine
        return DATABASES * engines + self.reader + self.session


# What each kind of process needs. The processes open their pools with exactly these sizes
# (`[database] pool_size` overrides them) and `connection_budget` counts them; they do not
# depend on the profile, only on what one process does at a time.
PROCESS_CONNECTIONS: Mapping[ComponentName, ProcessConnections] = MappingProxyType(
    {
        # One event loop per uvicorn worker process: lookups read through the reader, the
        # engines serve a statement or short transaction each (API key, submit, submission
        # status); a busy process waits on its core long before it waits on these. The
        # health checks run one query per database at a time.
        "api": ProcessConnections(engine=2, health_engine=1, reader=4),
        # The status page counts rows on fingerprint and on ingest twice at once.
        "web": ProcessConnections(engine=2),
        # One batch at a time: its ingest, app and fingerprint transactions, one of each.
        "worker": ProcessConnections(engine=1),
        # Jobs run one after another; the leader lock keeps a session of its own on app.
        "cron": ProcessConnections(engine=1, session=1),
    }
)


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class ComponentSize:
    """One component's machines: per-instance cpu (cores), memory and disk (bytes).

    A colocated component (``colocated_with`` set) runs on its host component's machines: cpu,
    memory and disk describe that machine, and it is not counted again in the totals. Every
    component on a machine gets an even share of it (``budget_*``, ``machine_share`` = how many
    components share the machine).
    """

    name: ComponentName
    cpu: float
    memory: int
    disk: int
    instances: int
    max_instances: int
    storage: Storage = "ssd"
    colocated_with: ComponentName | None = None
    notes: str = ""
    machine_share: int = 1

    @property
    def budget_cpu(self) -> float:
        return self.cpu / self.machine_share

    @property
    def budget_memory(self) -> int:
        return _mib_floor(self.memory // self.machine_share)


@dataclass(frozen=True)
class Totals:
    """Sum of cpu (cores), memory and disk (bytes) over all machines of a profile."""

    cpu: float
    memory: int
    disk: int


@dataclass(frozen=True)
class PostgresqlSettings:
    """postgresql.conf parameters for one server of the profile (primary and replicas alike)."""

    shared_buffers: int
    effective_cache_size: int
    work_mem: int
    maintenance_work_mem: int
    max_connections: int
    max_wal_size: int
    min_wal_size: int
    max_worker_processes: int
    max_parallel_workers: int
    max_parallel_workers_per_gather: int
    max_parallel_maintenance_workers: int
    random_page_cost: float
    effective_io_concurrency: int

    def parameters(self) -> dict[str, str]:
        """The settings as postgresql.conf / CNPG ``postgresql.parameters`` strings."""
        return {
            key: (f"{value // MIB}MB" if key in _PG_MEMORY_KEYS else str(value))
            for key, value in asdict(self).items()
        }


_PG_MEMORY_KEYS = frozenset(
    {
        "shared_buffers",
        "effective_cache_size",
        "work_mem",
        "maintenance_work_mem",
        "max_wal_size",
        "min_wal_size",
    }
)


@dataclass(frozen=True)
class RedisSettings:
    maxmemory: int
    maxmemory_policy: str

    def directives(self) -> dict[str, str]:
        """The settings as redis.conf directives."""
        return {"maxmemory": str(self.maxmemory), "maxmemory-policy": self.maxmemory_policy}


@dataclass(frozen=True)
class JetStreamSettings:
    max_file_store: int
    max_memory_store: int
    # Replicas of the SUBMISSIONS stream: R3 on a cluster of three or more, else R1.
    stream_replicas: int


@dataclass(frozen=True)
class IndexSettings:
    shards: int
    memory_budget: int
    disk_per_shard: int


@dataclass(frozen=True)
class PodResources:
    """Kubernetes requests and limits for one pod (cores and bytes)."""

    cpu_request: float
    cpu_limit: float
    memory_request: int
    memory_limit: int

    def as_kubernetes(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {
                "cpu": cpu_quantity(self.cpu_request),
                "memory": byte_quantity(self.memory_request),
            },
            "limits": {
                "cpu": cpu_quantity(self.cpu_limit),
                "memory": byte_quantity(self.memory_limit),
            },
        }


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int


@dataclass(frozen=True)
class Derived:
    """Everything computed from one profile's table."""

    postgresql: PostgresqlSettings
    redis: RedisSettings
    jetstream: JetStreamSettings
    index: IndexSettings
    pods: Mapping[ComponentName, PodResources]
    autoscaling: Mapping[ComponentName, Autoscaling]
    # Worker processes of the api and web servers in one pod: one per core of its budget.
    server_processes: Mapping[ComponentName, int]
    # PostgreSQL connections one pod of each app component holds at most (`pod_connections`).
    connections: Mapping[ComponentName, int]


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    components: Mapping[ComponentName, ComponentSize]

    def component(self, name: str) -> ComponentSize:
        if name not in self.components:
            raise SizingError(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}")
        return self.components[name]  # type: ignore[index]

    @property
    def totals(self) -> Totals:
        machines = [c for c in self.components.values() if c.colocated_with is None]
        return Totals(
            cpu=sum(c.cpu * c.instances for c in machines),
            memory=sum(c.memory * c.instances for c in machines),
            disk=sum(c.disk * c.instances for c in machines),
        )

    @cached_property
    def derived(self) -> Derived:
        return derive(self)


@dataclass(frozen=True)
class Sizing:
    profiles: Mapping[str, Profile]

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            known = ", ".join(self.profiles)
            raise SizingError(
                f"unknown sizing profile {name!r}; known: {known} "
                "(add one with --sizing-file my-sizing.yaml)"
            )
        return self.profiles[name]


# --------------------------------------------------------------------------- loading


def load_sizing(path: str | Path | None = None) -> Sizing:
    """The built-in table, plus (replacing same-named profiles) those in ``path``."""
    builtin = resources.files("acoustid_stack").joinpath("sizing.yaml").read_text("utf-8")
    profiles = _parse(builtin, "sizing.yaml")
    if path is not None:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise SizingError(f"cannot read sizing file {path}: {exc.strerror}") from None
        profiles.update(_parse(text, str(path)))
    return Sizing(profiles=profiles)


def _parse(text: str, source: str) -> dict[str, Profile]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SizingError(f"{source}: not valid YAML: {exc}") from None
    try:
        file = _SizingFile.model_validate(raw)
    except ValidationError as exc:
        raise SizingError(f"{source}: {_describe(exc)}") from None
    return {name: _profile(name, entry, source) for name, entry in file.profiles.items()}


def _describe(exc: ValidationError) -> str:
    """The first error as ``field.path: what is wrong`` in the table's own words."""
    error = exc.errors()[0]
    location = [str(part) for part in error["loc"]]
    if location and location[-1] == "[key]":
        location.pop()
        message = f"unknown name; use one of {', '.join(COMPONENTS)}"
    elif error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling)"
    elif error["type"] == "missing":
        message = "missing"
    elif not location:
        message = "expected a mapping with a 'profiles' key"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
    return f"{'.'.join(location) or 'top level'}: {message}"


def _profile(name: str, entry: _ProfileEntry, source: str) -> Profile:
    where = f"{source}: profiles.{name}"
    missing = [c for c in COMPONENTS if c not in entry.components]
    if missing:
        raise SizingError(f"{where}.components: missing {', '.join(missing)}")
    guests: dict[str, list[str]] = {}
    for component, spec in entry.components.items():
        field = f"{where}.components.{component}"
        if spec.colocated_with is None:
            absent = [k for k in ("cpu", "memory", "disk") if getattr(spec, k) is None]
            if absent:
                raise SizingError(f"{field}.{absent[0]}: missing (every machine needs a size)")
            continue
        host = entry.components[spec.colocated_with]
        if spec.colocated_with == component or host.colocated_with is not None:
            raise SizingError(
                f"{field}.colocated_with: {spec.colocated_with!r} must be a component with "
                "machines of its own"
            )
        if any(getattr(spec, k) is not None for k in ("cpu", "memory", "disk")):
            raise SizingError(
                f"{field}: a colocated component shares its host's machine; remove cpu, memory "
                "and disk"
            )
        if spec.instances != host.instances:
            raise SizingError(
                f"{field}.instances: must equal {spec.colocated_with}'s instances "
                f"({host.instances}) since it runs on those machines"
            )
        guests.setdefault(spec.colocated_with, []).append(component)

    components: dict[ComponentName, ComponentSize] = {}
    for component, spec in entry.components.items():
        host_name = spec.colocated_with or component
        machine = entry.components[host_name]
        # Checked above: every machine has all three sizes.
        assert machine.cpu is not None
        assert machine.memory is not None
        assert machine.disk is not None
        if (spec.max_instances or spec.instances) < spec.instances:
            raise SizingError(
                f"{where}.components.{component}.max_instances: must be at least instances "
                f"({spec.instances})"
            )
        components[component] = ComponentSize(
            name=component,
            cpu=machine.cpu,
            memory=machine.memory,
            disk=machine.disk,
            instances=spec.instances,
            max_instances=spec.max_instances or 2 * spec.instances,
            storage=spec.storage,
            colocated_with=spec.colocated_with,
            notes=spec.notes,
            machine_share=1 + len(guests.get(host_name, [])),
        )
    profile = Profile(name=name, description=entry.description, components=components)
    if entry.totals is not None:
        _check_totals(profile, entry.totals, where)
    return profile


def _check_totals(profile: Profile, expected: _TotalsEntry, where: str) -> None:
    actual = profile.totals
    for key, have, want, show in (
        ("cpu", actual.cpu, expected.cpu, format_cores),
        ("memory", actual.memory, expected.memory, format_bytes),
        ("disk", actual.disk, expected.disk, format_bytes),
    ):
        if not math.isclose(have, want, rel_tol=1e-9):
            raise SizingError(
                f"{where}.totals.{key}: the components add up to {show(have)}, "
                f"not {show(want)}; fix the table or the declared total"
            )


# --------------------------------------------------------------------------- derivation


def derive(profile: Profile) -> Derived:
    """All settings of a profile; each rule lives in one function below."""
    autoscaling = {name: autoscaling_for(profile.component(name)) for name in AUTOSCALED_COMPONENTS}
    server_processes: dict[ComponentName, int] = {
        name: max(1, int(profile.component(name).budget_cpu)) for name in ("api", "web")
    }
    connections = {
        name: pod_connections(name, processes=server_processes.get(name, 1))
        for name in APP_COMPONENTS
    }
    # the most pods there can be: the autoscaling ceilings, and cron's fixed instances
    most_pods = {name: bounds.max_replicas for name, bounds in autoscaling.items()}
    most_pods["cron"] = profile.component("cron").instances
    app_connections = sum(most_pods[name] * connections[name] for name in APP_COMPONENTS)
    return Derived(
        postgresql=postgresql_settings(
            profile.component("postgresql"), max_connections=connection_budget(app_connections)
        ),
        redis=redis_settings(profile.component("redis")),
        jetstream=jetstream_settings(profile.component("nats")),
        index=index_settings(profile.component("index")),
        pods={name: pod_resources(profile.component(name)) for name in ("index", *APP_COMPONENTS)},
        autoscaling=autoscaling,
        server_processes=server_processes,
        connections=connections,
    )


def autoscaling_for(size: ComponentSize) -> Autoscaling:
    """HPA bounds: the table's instances are the floor, ``max_instances`` the ceiling."""
    return Autoscaling(min_replicas=size.instances, max_replicas=size.max_instances)


def pod_connections(component: ComponentName, *, processes: int = 1) -> int:
    """PostgreSQL connections one pod (or host) of ``component`` holds at most: ``processes``
    processes of it (the api's and web's uvicorn workers) with every pool full."""
    return processes * PROCESS_CONNECTIONS[component].total


def connection_budget(app_connections: int) -> int:
    """max_connections for ``app_connections`` held by our pods (see ``derive``), plus the
    reserve, rounded up to 50 and at least PostgreSQL's default 100."""
    needed = app_connections + RESERVED_CONNECTIONS
    return max(100, math.ceil(needed / 50) * 50)


def postgresql_settings(size: ComponentSize, *, max_connections: int) -> PostgresqlSettings:
    """pgtune-style rules for a dedicated server with ``size``'s cpu, memory and disk."""
    cores = max(1, int(size.cpu))
    per_gather = max(1, min(4, cores // 2))
    shared_buffers = _mib_floor(size.memory // 4)
    # Each connection may run a few sorts/hashes at once, each multiplied by parallel workers.
    work_mem = (size.memory - shared_buffers) // (max_connections * 3) // per_gather
    # WAL between checkpoints: 2 % of the disk, at least 1 GiB, at most 16 GiB.
    max_wal_size = min(16 * GIB, max(GIB, _mib_floor(size.disk // 50)))
    solid_state = size.storage != "hdd"
    return PostgresqlSettings(
        shared_buffers=shared_buffers,
        effective_cache_size=_mib_floor(size.memory * 3 // 4),
        work_mem=max(4 * MIB, _mib_floor(work_mem)),
        maintenance_work_mem=min(2 * GIB, _mib_floor(size.memory // 16)),
        max_connections=max_connections,
        max_wal_size=max_wal_size,
        min_wal_size=max_wal_size // 4,
        max_worker_processes=cores,
        max_parallel_workers=cores,
        max_parallel_workers_per_gather=per_gather,
        max_parallel_maintenance_workers=per_gather,
        random_page_cost=1.1 if solid_state else 4.0,
        effective_io_concurrency=200 if solid_state else 2,
    )


def redis_settings(size: ComponentSize) -> RedisSettings:
    # 75 % leaves room for copy-on-write while RDB/AOF rewrites fork. Only keys with a TTL
    # (caches, rate-limit windows) are evicted; counters and locks without one never are.
    return RedisSettings(
        maxmemory=_mib_floor(size.memory * 3 // 4), maxmemory_policy="volatile-lru"
    )


def jetstream_settings(size: ComponentSize) -> JetStreamSettings:
    # Streams are file-backed; the rest of the disk and memory is headroom for the server.
    return JetStreamSettings(
        max_file_store=_mib_floor(size.disk * 4 // 5),
        max_memory_store=_mib_floor(size.memory // 4),
        stream_replicas=3 if size.instances >= 3 else 1,
    )


def index_settings(size: ComponentSize) -> IndexSettings:
    # One shard per instance; a quarter of the memory stays for the page cache over mmapped
    # segments and the server process itself.
    return IndexSettings(
        shards=size.instances,
        memory_budget=_mib_floor(size.memory * 3 // 4),
        disk_per_shard=size.disk,
    )


def pod_resources(size: ComponentSize) -> PodResources:
    """Requests are the component's share of its machine; memory limits equal requests (no
    overcommit, no surprise OOM kills under node pressure). Stateless pods may burst to twice
    their cpu; the index gets a fixed cpu limit so its pods keep Guaranteed QoS and are evicted
    last."""
    burst = 1 if size.name == "index" else 2
    return PodResources(
        cpu_request=size.budget_cpu,
        cpu_limit=size.budget_cpu * burst,
        memory_request=size.budget_memory,
        memory_limit=size.budget_memory,
    )


def _mib_floor(value: int) -> int:
    return value // MIB * MIB


# --------------------------------------------------------------------------- formatting


def byte_quantity(value: int) -> str:
    """Kubernetes quantity in the largest binary unit that is exact: ``2Gi``, ``512Mi``."""
    for suffix, unit in (("Ti", TIB), ("Gi", GIB), ("Mi", MIB), ("Ki", KIB)):
        if value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)


def cpu_quantity(cores: float) -> str:
    """Kubernetes cpu quantity: ``2`` or ``1500m``."""
    millicores = round(cores * 1000)
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def format_bytes(value: float) -> str:
    """Human size in binary units with the table's letters: ``11.5G``, ``2T``, ``512M``."""
    for suffix, unit in (("T", TIB), ("G", GIB), ("M", MIB), ("K", KIB)):
        if value >= unit:
            return f"{value / unit:.4g}{suffix}"
    return f"{value:.0f}"


def format_cores(value: float) -> str:
    return f"{value:g}"


# --------------------------------------------------------------------------- exports


def to_dict(profile: Profile) -> dict[str, Any]:
    """The profile and everything derived, as plain JSON-able data (bytes and cores)."""
    derived = profile.derived
    return {
        "profile": profile.name,
        "description": profile.description,
        "components": {name: asdict(size) for name, size in profile.components.items()},
        "totals": asdict(profile.totals),
        "derived": {
            "postgresql": asdict(derived.postgresql),
            "redis": asdict(derived.redis),
            "jetstream": asdict(derived.jetstream),
            "index": asdict(derived.index),
            "pods": {name: asdict(pod) for name, pod in derived.pods.items()},
            "autoscaling": {name: asdict(bounds) for name, bounds in derived.autoscaling.items()},
            "server_processes": dict(derived.server_processes),
            "connections": dict(derived.connections),
        },
    }


def helm_values(profile: Profile) -> dict[str, Any]:
    """The sized part of ``charts/acoustid-stack`` values (``values-<profile>.yaml``)."""
    derived = profile.derived
    values: dict[str, Any] = {}
    for name in AUTOSCALED_COMPONENTS:
        bounds = derived.autoscaling[name]
        values[name] = {
            "replicas": bounds.min_replicas,
            "autoscaling": {
                "minReplicas": bounds.min_replicas,
                "maxReplicas": bounds.max_replicas,
            },
            "resources": derived.pods[name].as_kubernetes(),
        }
        if name in derived.server_processes:
            values[name]["workers"] = derived.server_processes[name]
    values["cron"] = {
        "replicas": profile.component("cron").instances,
        "resources": derived.pods["cron"].as_kubernetes(),
    }
    values["index"] = {
        "shards": derived.index.shards,
        "resources": derived.pods["index"].as_kubernetes(),
        "persistence": {"size": byte_quantity(derived.index.disk_per_shard)},
        # A snapshot of a shard is at most the shard's data.
        "snapshots": {"persistence": {"size": byte_quantity(derived.index.disk_per_shard)}},
    }
    values["nats"] = {"streamReplicas": derived.jetstream.stream_replicas}
    return values


def ansible_vars(profile: Profile) -> dict[str, Any]:
    """Role-prefixed variables for ``group_vars/all/sizing.yml`` (bytes as MB/plain ints)."""
    derived = profile.derived
    return {
        "acoustid_sizing_profile": profile.name,
        "postgresql_instances": profile.component("postgresql").instances,
        "postgresql_parameters": derived.postgresql.parameters(),
        "redis_instances": profile.component("redis").instances,
        "redis_maxmemory": derived.redis.maxmemory,
        "redis_maxmemory_policy": derived.redis.maxmemory_policy,
        "nats_instances": profile.component("nats").instances,
        "nats_jetstream_max_file_store": derived.jetstream.max_file_store,
        "nats_jetstream_max_memory_store": derived.jetstream.max_memory_store,
        "nats_stream_replicas": derived.jetstream.stream_replicas,
        "index_shards": derived.index.shards,
        "index_memory_budget": derived.index.memory_budget,
        "acoustid_api_workers": derived.server_processes["api"],
        "acoustid_web_workers": derived.server_processes["web"],
        "acoustid_api_instances": profile.component("api").instances,
        "acoustid_web_instances": profile.component("web").instances,
        "acoustid_worker_instances": profile.component("worker").instances,
        "acoustid_cron_instances": profile.component("cron").instances,
    }
